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


def _operator(args: argparse.Namespace) -> int:
    import random

    import kopf

    import infragenius.handlers  # noqa: F401  (registers the handlers)
    from infragenius.observability import logs
    from infragenius.settings import Settings

    settings = Settings()
    logs.configure(settings.log_format, verbose=args.verbose)
    # Replicas must never tie on priority: Kopf pauses every operator of a tie.
    priority = settings.peering_priority if settings.peering_priority is not None else random.randint(1, 2**31 - 1)
    kopf.run(
        standalone=settings.peering_name is None,
        peering_name=settings.peering_name,
        priority=priority if settings.peering_name else None,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
    )
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from infragenius.analysis.cli_output import run_cli_analysis

    return run_cli_analysis(args)


def _crds(args: argparse.Namespace) -> int:
    from pathlib import Path

    from infragenius.crdgen import write_all

    for path in write_all(Path(args.output_dir)):
        print(path)
    return 0


def _rbac(args: argparse.Namespace) -> int:
    from pathlib import Path

    from infragenius.rbac import render_rules, render_stack_rules

    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_rules())
    print(path)
    stack_path = Path(args.stack_output) if args.stack_output else path.with_name("stack-role-rules.yaml")
    stack_path.write_text(render_stack_rules())
    print(stack_path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infragenius", description="InfraGenius operator and tools")
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("devcluster", help="a real local Kubernetes control plane on kwok nodes")
    dev.add_argument("action", choices=["up", "down", "status", "kubeconfig", "build"])
    dev.add_argument("--name", default="default", help="run several clusters side by side (default: %(default)s)")
    dev.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    dev.add_argument("-o", "--output", choices=["text", "json"], default="text")
    dev.set_defaults(func=_devcluster)

    op = commands.add_parser("operator", help="run the operator against the current kubeconfig or in-cluster config")
    op.add_argument("-v", "--verbose", action="store_true")
    op.set_defaults(func=_operator)

    an = commands.add_parser(
        "analyze", help="run the detectors on a namespace without the operator (exit 1 when problems are found)"
    )
    an.add_argument("-n", "--namespace", required=True)
    an.add_argument("-l", "--selector", default=None, help="label selector for workloads and pods")
    an.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")
    an.add_argument("--kubeconfig", default=None)
    an.add_argument("--min-severity", choices=["critical", "warning", "info"], default="info")
    an.add_argument(
        "--fail-on", choices=["critical", "warning", "info", "never"], default="warning",
        help="exit 1 when a finding at or above this severity exists (default: %(default)s)",
    )
    an.add_argument("--prometheus-url", default=None)
    an.add_argument("--detector", action="append", default=[], help="only this detector (repeatable)")
    an.add_argument("--exclude-detector", action="append", default=[], help="skip this detector (repeatable)")
    an.set_defaults(func=_analyze)

    crd = commands.add_parser("crds", help="write the CustomResourceDefinitions generated from the models")
    crd.add_argument("--output-dir", default="crds")
    crd.set_defaults(func=_crds)

    rbac = commands.add_parser("rbac", help="write the operator's ClusterRole rules (derived from what it gathers) and its stack Role rules")
    rbac.add_argument("--output", default="charts/infragenius-operator/files/clusterrole-rules.yaml")
    rbac.add_argument("--stack-output", default=None, help="the stack Role rules (default: stack-role-rules.yaml beside --output)")
    rbac.set_defaults(func=_rbac)
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
