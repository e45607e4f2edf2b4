"""The ``infragenius`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

DEVTOOLS_MISSING = (
    "infragenius devcluster is a developer tool and is not installed here; from a source checkout run "
    "`make install`, or `pip install -e ./devtools`"
)


def _devcluster(argv: Sequence[str]) -> int:
    """Forward to ``infragenius-dev devcluster``, imported only now: the operator wheel does not ship it."""
    # importlib, not an import statement: the operator package must not depend on its dev tools.
    import importlib

    try:
        devtools = importlib.import_module("infragenius_devtools.cli")
    except ImportError as err:
        if not (err.name or "").startswith("infragenius_devtools"):
            raise
        print(f"infragenius: {DEVTOOLS_MISSING}", file=sys.stderr)
        return 2
    return int(devtools.main(["devcluster", *argv], prog="infragenius"))


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


def _history_trends(args: argparse.Namespace) -> int:
    import asyncio
    import json
    import os
    import re

    import psycopg

    from infragenius.history.trends import TrendFilter, trends
    from infragenius.history.trends_output import render_trends

    dsn = args.postgres_url or os.environ.get("INFRAGENIUS_POSTGRES_URL")
    if not dsn:
        print("error: no Postgres: pass --postgres-url or set INFRAGENIUS_POSTGRES_URL", file=sys.stderr)
        return 2
    if args.workload is not None and not re.fullmatch(r"[A-Za-z]+/[-a-z0-9.]{1,253}", args.workload):
        print(f"error: --workload {args.workload!r}: expected KIND/NAME, e.g. Deployment/checkout", file=sys.stderr)
        return 2
    if not (1 <= args.days <= 3650 and 1 <= args.bucket_hours <= 24 * 31 and 1 <= args.top <= 500):
        print("error: --days 1..3650, --bucket-hours 1..744, --top 1..500", file=sys.stderr)
        return 2
    query = TrendFilter(args.namespace, args.workload, args.detector, args.days, args.bucket_hours)
    try:
        found = asyncio.run(trends(dsn, query, args.top))
    except psycopg.Error as err:
        print(
            f"error: history unreadable: {str(err).splitlines()[0] if str(err) else type(err).__name__}",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(found.as_json(), indent=2) if args.output == "json" else render_trends(found))
    return 0


def _rbac(args: argparse.Namespace) -> int:
    from pathlib import Path

    from infragenius.rbac import render_rules, render_server_rules, render_server_stack_rules, render_stack_rules

    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_rules())
    print(path)
    stack_path = Path(args.stack_output) if args.stack_output else path.with_name("stack-role-rules.yaml")
    stack_path.write_text(render_stack_rules())
    print(stack_path)
    # The server's own service account (chart: server.enabled), beside the operator's files.
    for name, text in (
        ("server-clusterrole-rules.yaml", render_server_rules()),
        ("server-stack-role-rules.yaml", render_server_stack_rules()),
    ):
        server_path = path.with_name(name)
        server_path.write_text(text)
        print(server_path)
    return 0


def _slo_rules(args: argparse.Namespace) -> int:
    """Print the Prometheus rule file for the SLOReviews in a YAML file; exit 2 on bad input."""
    import yaml

    from infragenius.slo import rules

    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as handle:
                text = handle.read()
        # libyaml's loader when present: the pure-Python one is most of the time for a large file.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        sources = rules.parse_documents(yaml.load_all(text, Loader=loader), default_namespace=args.namespace)
        document = rules.rule_file(sources, runbook_template=args.runbook_url_template)
    except OSError as err:
        print(f"infragenius slo rules: cannot read {args.file}: {err.strerror or err}", file=sys.stderr)
        return 2
    except yaml.YAMLError as err:
        print(f"infragenius slo rules: {args.file} is not valid YAML: {err}", file=sys.stderr)
        return 2
    except rules.RuleInputError as err:
        print(f"infragenius slo rules: {args.file}: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(rules.render(document))
    return 0


def _read_input(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _slo_openslo(args: argparse.Namespace) -> int:
    """``slo import`` (OpenSLO -> SLOReviews) and ``slo export`` (SLOReviews -> OpenSLO); exit 2 on bad input.

    Nothing reaches stdout unless the whole input converts: a partial file would be applied as if complete.
    """
    import json

    import yaml

    from infragenius.slo import openslo

    command = f"infragenius slo {args.slo_command}"
    try:
        text = _read_input(args.file)
        if args.slo_command == "import":
            result = openslo.import_text(text, namespace=args.namespace)
            documents, warnings = result.manifests, result.warnings
        else:
            documents, warnings = openslo.export_text(text), []
    except OSError as err:
        print(f"{command}: cannot read {args.file}: {err.strerror or err}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as err:
        print(f"{command}: {args.file} is not UTF-8 text: {err}", file=sys.stderr)
        return 2
    except yaml.YAMLError as err:
        print(f"{command}: {args.file} is not valid YAML: {err}", file=sys.stderr)
        return 2
    except openslo.OpenSLOError as err:
        print(f"{command}: {args.file}: {err}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(f"{command}: warning: {warning}", file=sys.stderr)
    if getattr(args, "output", "yaml") == "json":
        # One object kubectl applies as is, whatever the number of SLOs.
        sys.stdout.write(json.dumps({"apiVersion": "v1", "kind": "List", "items": documents}, indent=2) + "\n")
    else:
        sys.stdout.write(openslo.dump_yaml(documents))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infragenius", description="InfraGenius operator and tools")
    commands = parser.add_subparsers(dest="command", required=True)

    # Listed for --help only: main() forwards `devcluster ...` to the dev tools before parsing.
    dev = commands.add_parser(
        "devcluster", help="a real local Kubernetes control plane on kwok nodes (developer tools)", add_help=False
    )
    dev.add_argument("args", nargs=argparse.REMAINDER)
    dev.set_defaults(func=lambda args: _devcluster(args.args))

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
        "--fail-on",
        choices=["critical", "warning", "info", "never"],
        default="warning",
        help="exit 1 when a finding at or above this severity exists (default: %(default)s)",
    )
    an.add_argument("--prometheus-url", default=None)
    an.add_argument("--detector", action="append", default=[], help="only this detector (repeatable)")
    an.add_argument("--exclude-detector", action="append", default=[], help="skip this detector (repeatable)")
    an.add_argument(
        "--no-container-logs",
        action="store_true",
        help="do not read failing containers' logs (pods/log) for evidence",
    )
    an.set_defaults(func=_analyze)

    crd = commands.add_parser("crds", help="write the CustomResourceDefinitions generated from the models")
    crd.add_argument("--output-dir", default="crds")
    crd.set_defaults(func=_crds)

    rbac = commands.add_parser(
        "rbac", help="write the chart's RBAC rule files: the operator's ClusterRole and stack Role, and the server's"
    )
    rbac.add_argument("--output", default="charts/infragenius-operator/files/clusterrole-rules.yaml")
    rbac.add_argument(
        "--stack-output", default=None, help="the stack Role rules (default: stack-role-rules.yaml beside --output)"
    )
    rbac.set_defaults(func=_rbac)

    history = commands.add_parser("history", help="trends from the findings history in Postgres")
    history_commands = history.add_subparsers(dest="history_command", required=True)
    trends = history_commands.add_parser(
        "trends", help="open findings over time, mean time to resolve and the top recurring problems"
    )
    trends.add_argument("-n", "--namespace", default=None, help="findings in this namespace")
    trends.add_argument("--workload", default=None, metavar="KIND/NAME", help="e.g. Deployment/checkout (its pods too)")
    trends.add_argument("--detector", default=None)
    trends.add_argument("--days", type=int, default=30, help="how far back (default: %(default)s)")
    trends.add_argument("--bucket-hours", type=int, default=24, help="open findings per bucket (default: %(default)s)")
    trends.add_argument("--top", type=int, default=10, help="recurring problems listed (default: %(default)s)")
    trends.add_argument("-o", "--output", choices=["table", "json"], default="table")
    trends.add_argument("--postgres-url", default=None, help="default: INFRAGENIUS_POSTGRES_URL")
    trends.set_defaults(func=_history_trends)

    slo = commands.add_parser("slo", help="SLO tools that work offline")
    slo_commands = slo.add_subparsers(dest="slo_command", required=True)
    slo_rules = slo_commands.add_parser(
        "rules", help="print the Prometheus recording and burn-rate alert rules for SLOReviews in a YAML file"
    )
    slo_rules.add_argument("-f", "--file", required=True, help="one or more SLOReview documents; - for stdin")
    slo_rules.add_argument(
        "-n", "--namespace", default="default", help="for SLOReviews without metadata.namespace (default: %(default)s)"
    )
    slo_rules.add_argument(
        "--runbook-url-template",
        default=None,
        help="runbook_url for SLOReviews without the infragenius.io/runbook-url annotation; may use "
        "{namespace}, {name}, {service}, {severity} and {policy}",
    )
    slo_rules.set_defaults(func=_slo_rules)
    slo_import = slo_commands.add_parser(
        "import", help="print SLOReview manifests for the OpenSLO v1 SLOs in a YAML file (SLO, SLI, Service, ...)"
    )
    slo_import.add_argument("file", metavar="FILE", help="OpenSLO v1 documents; - for stdin")
    slo_import.add_argument(
        "-n",
        "--namespace",
        default=None,
        help="metadata.namespace for SLOs without the infragenius.io/namespace annotation (default: none)",
    )
    slo_import.add_argument("-o", "--output", choices=["yaml", "json"], default="yaml")
    slo_import.set_defaults(func=_slo_openslo)
    slo_export = slo_commands.add_parser("export", help="print OpenSLO v1 documents for the SLOReviews in a YAML file")
    slo_export.add_argument(
        "-f", "--file", required=True, help="one or more SLOReview documents (or a List); - for stdin"
    )
    slo_export.set_defaults(func=_slo_openslo)

    from infragenius.server.commands import add_parsers as add_server_parsers

    add_server_parsers(commands)  # serve, mcp --stdio, keys
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["devcluster"]:
            return _devcluster(argv[1:])
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
