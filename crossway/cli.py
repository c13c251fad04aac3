"""The `crossway` command: serve, config check, master-key rotate."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from crossway import keys_cli
from crossway.config import SERVER_NAMES, ConfigError, Settings, load_settings


def _load(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    if getattr(args, "host", None):
        settings.server.host = args.host
    if getattr(args, "port", None) is not None:
        settings.server.port = args.port
    if getattr(args, "server", None):
        settings.server.server = args.server
    return settings


def _redact_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _banner(settings: Settings, services_models: int, key_line: str) -> str:
    host, port = settings.server.host, settings.server.port
    providers = ", ".join(f"{n} ({p.type})" for n, p in settings.providers.items()) or "none"
    lines = [
        f"Crossway listening on http://{host}:{port}/v1",
        f"  settings:  {settings.source}",
        f"  providers: {providers}",
        f"  models:    {services_models} (GET /v1/models)",
        f"  state:     {_redact_url(settings.database_url)}; limits "
        + ("in Redis" if settings.redis_url else "in this process"),
        f"  auth:      Authorization: Bearer <master key>; {key_line}",
    ]
    if not settings.providers:
        lines.append(
            "  no provider is configured: set OPENAI_API_KEY (or another vendor's key), "
            "write crossway.yaml, or try `crossway serve --demo`"
        )
    return "\n".join(lines)


def cmd_serve(args: argparse.Namespace) -> int:
    from crossway.api.auth import hash_key
    from crossway.app import MasterKey, build_services, create_app, master_key
    from crossway.server import SERVERS

    settings = _load(args)
    upstream_sock = None
    if args.demo:
        from crossway.demo import demo_settings, demo_socket

        upstream_sock = demo_socket()
        port = upstream_sock.getsockname()[1]
        settings = demo_settings(f"http://127.0.0.1:{port}", settings)
        assert settings.master_key is not None
        secret = settings.master_key.get_secret_value()
        master = MasterKey(hash_key(secret), "demo")
        key_line = f"the demo key is {secret}"
    else:
        master = master_key(settings)
        if master.new_key:
            key_line = (
                f"a new master key was generated (shown once, keep it):\n\n      {master.new_key}\n"
            )
        else:
            key_line = f"master key from {master.source}"
    if settings.migrate_on_start:
        _migrate(settings)
    services = build_services(settings, master)
    app = create_app(services)
    if upstream_sock is not None:
        from crossway.testing import SimulatedUpstream

        simulated = SimulatedUpstream()
        sock = upstream_sock

        async def start_simulated() -> None:
            await simulated.start_on_socket(sock)

        app.on_startup.insert(0, start_simulated)
        app.on_shutdown.append(simulated.stop)
        key_line += (
            "\n  demo:      every provider is Crossway's simulated upstream; answers are simulated"
        )
    banner = _banner(settings, len(services.table.deployments), key_line)

    async def farewell() -> None:
        print(f"Crossway stopped; usage events dropped: {services.usage.dropped}", flush=True)

    app.on_shutdown.append(farewell)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    SERVERS[settings.server.server](app, settings.server, banner)
    return 0


def _migrate(settings: Settings) -> None:
    from crossway.store.migrate import upgrade

    try:
        upgrade(settings.database_url)
    except Exception as exc:  # unreachable server, bad URL, no permission
        raise ConfigError(
            settings.source,
            [
                (
                    "database_url",
                    f"could not migrate the database: {type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}",
                )
            ],
        ) from None


def cmd_keys(args: argparse.Namespace) -> int:
    settings = _load(args)
    _migrate(settings)
    return keys_cli.keys_command(settings, args)


def cmd_usage(args: argparse.Namespace) -> int:
    settings = _load(args)
    _migrate(settings)
    return keys_cli.usage_command(settings, args)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from crossway.store.migrate import current

    settings = _load(args)
    _migrate(settings)
    print(f"database at revision {current(settings.database_url)}")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    from crossway.app import MasterKey, build_services

    settings = _load(args)
    services = build_services(settings, MasterKey(b"", "check"), writers=[])
    print(f"{settings.source}: OK")
    for name, provider in settings.providers.items():
        print(f"  provider {name}: type {provider.type}")
    print(f"  {len(services.table.deployments)} models served")
    return 0


def cmd_master_key_rotate(args: argparse.Namespace) -> int:
    from crossway.app import master_key

    settings = _load(args)
    if settings.master_key is not None:
        print(
            "the master key comes from the config or CROSSWAY_MASTER_KEY; change it there",
            file=sys.stderr,
        )
        return 1
    new = master_key(settings, rotate=True)
    print(f"new master key (shown once, keep it): {new.new_key}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crossway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--config",
            "-c",
            help="settings file (default: $CROSSWAY_CONFIG, ./crossway.yaml, else the environment)",
        )
        return p

    serve = with_config(sub.add_parser("serve", help="run the gateway"))
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--server", choices=SERVER_NAMES)
    serve.add_argument(
        "--demo", action="store_true", help="wire every provider to the built-in simulated upstream"
    )
    serve.set_defaults(func=cmd_serve)

    config = sub.add_parser("config", help="settings")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = with_config(config_sub.add_parser("check", help="validate settings, do not start"))
    check.set_defaults(func=cmd_config_check)

    keys_cli.add_parsers(sub, with_config)
    for name in ("keys", "usage"):
        sub.choices[name].set_defaults(func=cmd_keys if name == "keys" else cmd_usage)

    db = sub.add_parser("db", help="the database")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = with_config(db_sub.add_parser("upgrade", help="run pending migrations"))
    upgrade.set_defaults(func=cmd_db_upgrade)

    mk = sub.add_parser("master-key", help="the master key")
    mk_sub = mk.add_subparsers(dest="mk_command", required=True)
    rotate = with_config(mk_sub.add_parser("rotate", help="generate a new master key"))
    rotate.set_defaults(func=cmd_master_key_rotate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
