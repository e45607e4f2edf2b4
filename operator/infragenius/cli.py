"""The ``infragenius`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from infragenius.devcluster import DevClusterError, LocalCluster
from infragenius.devcluster.build import ensure_binaries


def _devcluster(args: argparse.Namespace) -> int:
    cluster = LocalCluster(args.name)
    if args.action == "build":
        binaries = ensure_binaries(echo=True)
        for path in vars(binaries).values():
            print(path)
        return 0
    if args.action == "up":
        info = cluster.up(timeout=args.timeout)
        print(f"kubeconfig: {info.kubeconfig}")
        print(f"logs:       {info.log_dir}")
        return 0
    if args.action == "down":
        cluster.down()
        return 0
    if args.action == "kubeconfig":
        info = cluster.info()
        if info is None:
            print(f"cluster {args.name!r} is not running; start it with `infragenius devcluster up`", file=sys.stderr)
            return 1
        print(info.kubeconfig)
        return 0
    # status
    info = cluster.info()
    healthy = info is not None and cluster.is_healthy()
    if args.output == "json":
        print(json.dumps({"name": args.name, "running": healthy, **(info.__dict__ if info else {})}, indent=2))
    elif info is None:
        print(f"cluster {args.name!r}: not running")
        print(f"logs:       {cluster.log_dir}")
    else:
        print(f"cluster {args.name!r}: {'running' if healthy else 'not ready'} ({info.version}) at {info.server}")
        for component, pid in sorted(info.pids.items()):
            print(f"  {component:<24} pid {pid:<8} port {info.ports.get(component, '-')}")
        print(f"kubeconfig: {info.kubeconfig}")
        print(f"logs:       {info.log_dir}")
    return 0 if healthy else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infragenius", description="InfraGenius operator and tools")
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("devcluster", help="a real local Kubernetes control plane on kwok nodes")
    dev.add_argument("action", choices=["up", "down", "status", "kubeconfig", "build"])
    dev.add_argument("--name", default="default", help="run several clusters side by side (default: %(default)s)")
    dev.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    dev.add_argument("-o", "--output", choices=["text", "json"], default="text")
    dev.set_defaults(func=_devcluster)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except DevClusterError as err:
        print(f"infragenius: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
