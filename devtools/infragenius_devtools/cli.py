"""``infragenius-dev``: the local control plane (``devcluster``), its node's images (``images``) and the
README generator (``docs``).

``infragenius devcluster ...`` forwards here, so developers keep the command they know.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from infragenius_devtools.devcluster.errors import DevClusterError


def _devcluster(args: argparse.Namespace) -> int:
    from infragenius_devtools.devcluster import LocalCluster
    from infragenius_devtools.devcluster.build import ensure_binaries

    if args.action == "build":
        binaries = ensure_binaries(echo=True)
        for path in vars(binaries).values():
            print(path)
        return 0
    cluster = LocalCluster(args.name, real_node=getattr(args, "real_node", False))
    if args.action == "up":
        started = cluster.up(timeout=args.timeout)
        print(f"kubeconfig: {started.kubeconfig}")
        print(f"logs:       {started.log_dir}")
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


def _docs(args: argparse.Namespace) -> int:
    from infragenius_devtools import docsgen

    return docsgen.main([*(["--check"] if args.check else []), *(["--readme", args.readme] if args.readme else [])])


def _images(args: argparse.Namespace) -> int:
    from infragenius_devtools import images

    if args.list:
        for name, spec in images.specs().items():
            if args.only and name not in args.only:
                continue
            cached = images.cached_image(name)
            print(f"{name:<9} {spec.ref:<50} {cached.archive if cached else '(not built)'}")
            print(f"{'':<9} {spec.summary}")
        return 0
    for ref, archive in images.ensure_images(args.only or None, echo=True).items():
        print(f"{ref}\t{archive}")
    return 0


def add_devcluster_arguments(dev: argparse.ArgumentParser) -> None:
    dev.add_argument("action", choices=["up", "down", "status", "kubeconfig", "build"])
    dev.add_argument("--name", default="default", help="run several clusters side by side (default: %(default)s)")
    dev.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    dev.add_argument(
        "--real-node",
        action="store_true",
        help="also run a real node (kubelet, containerd, CNI, kube-proxy, CoreDNS; needs root) next to the kwok nodes",
    )
    dev.add_argument("-o", "--output", choices=["text", "json"], default="text")
    dev.set_defaults(func=_devcluster)


def build_parser(prog: str = "infragenius-dev") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="InfraGenius developer tools")
    commands = parser.add_subparsers(dest="command", required=True)
    add_devcluster_arguments(
        commands.add_parser("devcluster", help="a real local Kubernetes control plane on kwok nodes")
    )
    img = commands.add_parser("images", help="build the node's OCI images from Debian packages (needs root)")
    img.add_argument("--only", nargs="+", metavar="NAME", help="only these images (see --list)")
    img.add_argument("--list", action="store_true", help="list the images, their references and cached archives")
    img.set_defaults(func=_images)
    docs = commands.add_parser("docs", help="regenerate README.md's configuration table from the settings model")
    docs.add_argument("--check", action="store_true", help="exit 1 when the table is out of date")
    docs.add_argument("--readme", default=None, help="default: the checkout's README.md")
    docs.set_defaults(func=_docs)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "infragenius-dev") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        return int(args.func(args))
    except DevClusterError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
