"""The bodies of `infragenius serve`, `infragenius mcp --stdio` and `infragenius keys ...` (cli.py only routes)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import re
import sys
from typing import Any

from infragenius.models.common import DNS_LABEL_PATTERN
from infragenius.settings import Settings

log = logging.getLogger(__name__)


def add_parsers(commands: Any) -> None:
    """Register the server's subcommands on the CLI's subparsers."""
    serve = commands.add_parser("serve", help="run the MCP server (/mcp) and the JSON API (/v1) with auth and limits")
    serve.add_argument("-v", "--verbose", action="store_true")
    serve.set_defaults(func=run_serve)

    mcp = commands.add_parser("mcp", help="serve MCP to a local assistant over stdio, as your kubeconfig's user")
    mcp.add_argument("--stdio", action="store_true", required=True, help="speak MCP on stdin/stdout")
    mcp.add_argument("--kubeconfig", default=None)
    mcp.set_defaults(func=run_stdio)

    keys = commands.add_parser("keys", help="manage API keys of the server (needs INFRAGENIUS_POSTGRES_URL)")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--owner", required=True, help="who the key belongs to (a person or a team)")
    create.add_argument("--tier", default="free", help="rate-limit tier of a new owner (default: %(default)s)")
    create.add_argument("--scope", action="append", choices=["read", "run"], required=True, help="repeatable")
    create.add_argument(
        "--namespace", action="append", required=True, help='namespace the key may use (repeatable; "*": any)'
    )
    create.add_argument("--expires-in-days", type=float, default=90.0, help="0: never (default: %(default)s)")
    create.set_defaults(func=run_keys)
    listing = key_commands.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--owner", default=None)
    listing.add_argument("-o", "--output", choices=["table", "json"], default="table")
    listing.set_defaults(func=run_keys)
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id; effective within seconds")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=run_keys)


def _configure_logging(verbose: bool) -> Settings:
    from infragenius.observability import logs

    settings = Settings()
    logs.configure(settings.log_format, verbose=verbose)
    return settings


def run_serve(args: argparse.Namespace) -> int:
    from infragenius.server.app import serve

    settings = _configure_logging(args.verbose)
    # The SDK logs every stateless request ("Terminating session") at INFO: noise at one line per call.
    logging.getLogger("mcp").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    asyncio.run(serve(settings))
    return 0


def run_stdio(args: argparse.Namespace) -> int:
    """MCP over stdio for one local user: reads and writes with their kubeconfig, so the API server decides."""
    from kubernetes import config

    from infragenius.server.identity import AuthMethod, Identity
    from infragenius.server.mcp_face import build_mcp_server
    from infragenius.server.readers import DirectReader
    from infragenius.server.service import Authorizer, InfraGeniusService

    # stdout is the protocol channel: logs go to stderr only.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    settings = Settings()
    api = config.new_client_from_config(config_file=args.kubeconfig or settings.kubeconfig)

    async def main() -> None:
        from infragenius.history.store import HistoryStore

        history = None
        if settings.postgres_url is not None:
            history = HistoryStore(settings.postgres_url.get_secret_value())
            await history.open(wait=True, timeout=15)
        service = InfraGeniusService(
            reader=DirectReader(api),
            api=api,
            history=history.pool if history else None,
            authorizer=Authorizer(None),
            limiter=None,
            audit=None,
            trigger_max_wait_seconds=settings.server_trigger_max_wait_seconds,
        )
        local = Identity(principal="local", method=AuthMethod.local, tier="local")
        try:
            await build_mcp_server(service, face="stdio", fallback=local).run_stdio_async()
        finally:
            if history is not None:
                await history.close()

    asyncio.run(main())
    return 0


def _postgres_url(settings: Settings) -> str | None:
    """INFRAGENIUS_POSTGRES_URL, else the deployed stack's Postgres as `serve` finds it (in the server's pod)."""
    if settings.postgres_url is not None:
        return settings.postgres_url.get_secret_value()
    if not settings.manages_stack:
        return None
    from kubernetes import client, config

    from infragenius.runs.startup import api_client
    from infragenius.stack.apply import endpoints

    try:
        api = api_client(settings)
    except (config.ConfigException, OSError):
        return None
    try:
        return endpoints(settings, api).postgres
    except client.ApiException:
        return None
    finally:
        api.close()


def run_keys(args: argparse.Namespace) -> int:
    settings = Settings()
    url = _postgres_url(settings)
    if url is None:
        print("infragenius keys: set INFRAGENIUS_POSTGRES_URL to the history database", file=sys.stderr)
        return 2
    if args.keys_command == "create":
        bad = [n for n in args.namespace if n != "*" and not re.fullmatch(DNS_LABEL_PATTERN, n)]
        if bad:
            print(f"infragenius keys create: not namespace names: {', '.join(map(repr, bad))}", file=sys.stderr)
            return 2
        if args.tier not in settings.server_tier_limits:
            known = ", ".join(sorted(settings.server_tier_limits))
            print(f"infragenius keys create: unknown tier {args.tier!r} (known: {known})", file=sys.stderr)
            return 2
    return asyncio.run(_keys(args, url))


async def _keys(args: argparse.Namespace, url: str) -> int:
    from infragenius.history import server_tables
    from infragenius.history.store import HistoryStore
    from infragenius.server.apikeys import create_key
    from infragenius.server.identity import Scope

    store = HistoryStore(url)
    await store.open(wait=True, timeout=15)
    try:
        await store.migrate()
        if args.keys_command == "create":
            expires = (
                dt.datetime.now(dt.UTC) + dt.timedelta(days=args.expires_in_days) if args.expires_in_days > 0 else None
            )
            existing = await server_tables.owner_tier(store.pool, args.owner)
            if existing is not None and existing != args.tier:
                print(f"note: {args.owner} keeps its tier {existing!r}; --tier applies to new owners", file=sys.stderr)
            key = await create_key(
                store.pool,
                owner=args.owner,
                tier=args.tier,
                scopes=sorted({Scope(s) for s in args.scope}),
                namespaces=sorted(set(args.namespace)),
                expires_at=expires,
            )
            print(key.secret_key)
            print(
                f"key id {key.key_id}; expires {expires.isoformat() if expires else 'never'}. "
                "This is the only time the key is shown.",
                file=sys.stderr,
            )
            return 0
        if args.keys_command == "list":
            rows = await server_tables.list_api_keys(store.pool, args.owner)
            entries: list[dict[str, Any]] = [
                {
                    "keyId": r.key_id,
                    "owner": r.owner,
                    "tier": r.tier,
                    "scopes": list(r.scopes),
                    "namespaces": list(r.namespaces),
                    "created": r.created_at.isoformat(),
                    "expires": r.expires_at.isoformat() if r.expires_at else None,
                    "revoked": r.revoked_at.isoformat() if r.revoked_at else None,
                }
                for r in rows
            ]
            if args.output == "json":
                print(json.dumps(entries, indent=2))
            else:
                print(f"{'KEY ID':14}{'OWNER':20}{'TIER':8}{'SCOPES':12}{'NAMESPACES':30}{'EXPIRES':27}REVOKED")
                for e in entries:
                    print(
                        f"{e['keyId']:14}{e['owner'][:19]:20}{e['tier']:8}{','.join(e['scopes']):12}"
                        f"{','.join(e['namespaces'])[:29]:30}{e['expires'] or 'never':27}{e['revoked'] or '-'}"
                    )
            return 0
        if await server_tables.revoke_api_key(store.pool, args.key_id):
            print(f"revoked {args.key_id}")
            return 0
        print(f"infragenius keys revoke: no active key {args.key_id!r}", file=sys.stderr)
        return 1
    finally:
        await store.close()
