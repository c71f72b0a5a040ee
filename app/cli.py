"""The ``panorama`` command: serve, migrate, rollup, digest, check-config."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType

from app import __version__
from app.config import (
    GENERATED_TOKEN_FILE,
    ConfigError,
    Settings,
    admin_token_notice,
    load_settings,
    resolve_config_path,
    served_url,
    with_generated_admin_token,
)
from app.times import Clock, InvalidTime, parse_day

log = logging.getLogger("panorama.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="panorama",
        description="Panorama: daily rollups, on-call alert routing and logs/traces correlation.",
    )
    parser.add_argument("--version", action="version", version=f"panorama {__version__}")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML configuration (default: $PANORAMA_CONFIG, else ./panorama.yaml when present)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.add_argument("--revision", default="head", help="target revision (default: head)")

    rollup = commands.add_parser("rollup", help="roll up a day, or backfill a range of days, now")
    rollup.add_argument("--date", help="one local day: 2026-11-20, now-1d, or any form of the README's Times")
    rollup.add_argument("--from", dest="first", help="first day of a range (the same forms)")
    rollup.add_argument("--to", dest="last", help="last day of a range, inclusive (the same forms)")

    digest = commands.add_parser("digest", help="render a daily digest (运维日报), or send it once")
    digest.add_argument("name", help="the digest's name (the digests section)")
    digest.add_argument(
        "--date",
        dest="day",
        help="the day it covers: 2026-11-20, now-1d, or any form of the README's Times (default: yesterday)",
    )
    digest.add_argument("--dry-run", action="store_true", help="print it, send nothing")
    digest.add_argument("--markdown", action="store_true", help="with --dry-run: as DingTalk markdown")
    digest.add_argument("--force", action="store_true", help="send it even if it was sent for that day")

    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file", nargs="?", help="file to check (default: as for --config)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check-config":
        return check_config(args.file or args.config)
    path = resolve_config_path(args.config, os.environ)
    settings = _load_or_report(path)
    if settings is None:
        return 1
    if args.command == "migrate":
        return migrate(settings, args.revision)
    if args.command == "rollup":
        from app.rollups.cli import rollup

        try:
            day, first, last = (
                _day(args.date, "--date", settings),
                _day(args.first, "--from", settings),
                _day(args.last, "--to", settings, end=True),
            )
        except InvalidTime as exc:
            print(exc.message, file=sys.stderr)
            return 2
        return rollup(settings, date=day, first=first, last=last)
    if args.command == "digest":
        from app.digests.cli import digest

        return digest(
            settings, args.name, day=args.day, dry_run=args.dry_run, force=args.force, markdown=args.markdown
        )
    return serve(settings, path, args.host, args.port)


def _day(text: str | None, option: str, settings: Settings, *, end: bool = False) -> date | None:
    """An option's local day, read by the one time grammar (:mod:`app.times`)."""
    if text is None:
        return None
    clock = Clock(datetime.now(UTC), settings.tzinfo)
    return parse_day(text, option, clock, end=end, source="option")


def _load_or_report(path: Path | None) -> Settings | None:
    try:
        return load_settings(path)
    except ConfigError as exc:
        _print_problems(exc)
        return None


def _print_problems(exc: ConfigError) -> None:
    """Every problem, each on its own line as ``file:line: key.path: what is wrong``."""
    count = len(exc.problems)
    print(f"{exc.source}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
    for line in exc.lines():
        print(f"  {line}", file=sys.stderr)


def check_config(cli_path: str | None) -> int:
    path = resolve_config_path(cli_path, os.environ)
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        _print_problems(exc)
        return 1
    print(f"{path or '(defaults)'}: OK — {summary(settings)}")
    return 0


def summary(settings: Settings) -> str:
    backends = ", ".join(
        f"{name} {getattr(settings, name).display_url or 'not configured'}"
        for name in ("prometheus", "elasticsearch", "jaeger")
    )
    return (
        f"database {settings.database.dialect}, timezone {settings.timezone}, {_tokens(settings)}, {backends}"
    )


def _tokens(settings: Settings) -> str:
    """The configured API tokens, and the admin token file ``serve`` uses (named, never read out).
    Only looks: ``serve`` makes the file, not a check."""
    count = len(settings.auth.tokens)
    said = f"{count} API token{'s' if count != 1 else ''}"
    token_file = Path(settings.data_dir) / GENERATED_TOKEN_FILE
    if token_file.is_file():
        return f"{said} + the admin token in {token_file}"
    if count == 0:
        return f"{said} (serve generates an admin token in {token_file})"
    return said


def migrate(settings: Settings, revision: str) -> int:
    from app import db, migrations

    async def run() -> str | None:
        engine = db.create_engine(settings.database)
        try:
            await migrations.upgrade(engine, revision)
            return await migrations.current_revision(engine)
        finally:
            await engine.dispose()

    current = asyncio.run(run())
    print(f"database {db.display_url(settings.database)} is at revision {current}")
    return 0


BACKLOG = 2048
"""Connections the kernel queues for the listening sockets (uvicorn's default backlog)."""


class CannotListen(Exception):
    """The address ``serve`` was asked for cannot be listened on; the message says what to do."""


def serve(settings: Settings, config_path: Path | None, host: str, port: int) -> int:
    # The port first, before anything of the app starts: a second `panorama serve` (another
    # `make run`) on a port already taken started its scheduler and delivery worker against the
    # same database (and wrote the admin token file), and only then failed to bind.
    try:
        sockets = listen(host, port)
    except CannotListen as exc:
        print(f"panorama serve: {exc}", file=sys.stderr)
        return 1
    try:
        return _serve(settings, config_path, host, sockets)
    finally:
        for sock in sockets:
            sock.close()


def listen(host: str, port: int) -> list[socket.socket]:
    """Sockets listening on ``host``:``port``, bound as uvicorn's own start bound them
    (asyncio's ``create_server``): one per address the host resolves to (``localhost``: each
    address the hosts file gives it; ``""``: every interface, both families), ``SO_REUSEADDR``,
    IPv6 sockets IPv6-only. They listen at once, so that the port is this process's before its app
    starts (two sockets merely bound with ``SO_REUSEADDR`` may share a port); uvicorn is handed
    them (``Server.run(sockets=...)``) and binds nothing."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        found = socket.getaddrinfo(
            host or None, port, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise CannotListen(
            f"cannot listen on {where}: the host is not known ({exc.strerror}); pass --host"
        ) from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _canonical, address in dict.fromkeys(found):
            try:
                sock = socket.socket(family, kind, proto)
            except OSError:
                continue  # a family this kernel lacks (IPv6 off), skipped as asyncio skips it
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            other = port + 1 if 0 < port < 65535 else 8000
            raise CannotListen(
                f"{where}: address already in use: another Panorama (another `make run`?) or another program "
                f"is listening there; stop it, or pass another port: --port {other} (make run PORT={other})"
            ) from None
        reason = (exc.strerror or str(exc)).lower()
        raise CannotListen(f"cannot listen on {where}: {reason}; pass another --host or --port") from None
    return sockets


def _serve(settings: Settings, config_path: Path | None, host: str, sockets: list[socket.socket]) -> int:
    import uvicorn

    from app.main import create_app
    from app.observability import configure_logging

    port: int = sockets[0].getsockname()[1]  # the one asked for; the one the OS chose for --port 0
    settings, token_file = with_generated_admin_token(settings)
    configure_logging(settings.logging.level, secrets=settings.secrets())
    for sock in sockets:
        address = sock.getsockname()
        shown = f"[{address[0]}]" if sock.family == socket.AF_INET6 else address[0]
        log.info("listening on http://%s:%d", shown, address[1])
    if token_file is not None:
        if (notice := admin_token_notice(token_file)) is not None:
            log.warning(notice)
        else:
            log.info("no API tokens are configured: using the admin token in %s", token_file.path)
    app = create_app(settings, config_path=config_path, served_url=served_url(host, port))
    context = app.state.context
    grace = settings.server.shutdown_grace.total_seconds()

    class Server(uvicorn.Server):
        """Tells Panorama the moment SIGTERM (or SIGINT) arrives, so that its grace starts then:
        requests in flight, deliveries and jobs all finish within the one grace."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            context.begin_shutdown()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        # requests in flight get most of the grace; the rest is the lifespan's (see AppContext.close)
        timeout_graceful_shutdown=max(1, int(grace * 0.75)),
        backlog=BACKLOG,
    )
    Server(config).run(sockets=sockets)  # listening already (see serve): uvicorn binds nothing
    return 0


if __name__ == "__main__":
    sys.exit(main())
