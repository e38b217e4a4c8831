"""``idp``: serve, migrate, keys (service/cli_keys.py), users, clients and mail administration.

Exit codes: 0 success, 1 the operation was refused (e.g. unknown account), 2 bad usage or
configuration.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import msgspec
import uvicorn

from service.admin.access import CLI
from service.cli_admin import add_admin_commands
from service.cli_keys import add_keys_commands
from service.cli_mfa import add_mfa_commands
from service.cli_support import EXIT_REFUSED, EXIT_USAGE, CliError, iso, print_json, when, with_runtime
from service.clock import Clock, system_clock
from service.config import SIGNING_ALGS, ConfigError, Settings, load_settings
from service.errors import IdPError
from service.keys.files import KeyFileError
from service.mail.commands import deliver, list_mail
from service.passwords import huge_page_mode
from service.runtime import Runtime, StartupError
from service.store.base import StorageUnavailable

__all__ = ["main"]


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    async def preflight(runtime: Runtime) -> None:
        """Migrate and load keys once, with clear errors, before any worker starts; say once
        what the host's page size costs each hash (docs/PERFORMANCE.md)."""
        if runtime.passwords.on_libsodium and (mode := huge_page_mode()) not in {None, "always"}:
            logging.getLogger("idp").info(
                "argon2: transparent huge pages are '%s', so each hash maps its %d MiB in 4 KiB "
                "pages (~40%% of a hash's CPU where measured; 'always' gave 1.3x logins/s: "
                "README, Production)",
                mode,
                settings.argon2.memory_kib // 1024,
            )

    with_runtime(settings, preflight, clock=args.clock, with_keys=True)
    # Workers build their own settings from the environment; pass the flags on to them.
    os.environ["IDP_HOST"] = settings.host
    os.environ["IDP_PORT"] = str(settings.port)
    # Every worker's argon2 pool has one thread per core (IDP_ARGON2_THREADS' default), not a
    # share of them: uvicorn keeps a keep-alive connection on the worker that accepted it, and
    # few long-lived connections (a gateway) often all land on one worker, which must then be
    # able to use the whole machine. When the connections are spread, the pools' SCHED_IDLE
    # threads time-share the cores (docs/PERFORMANCE.md, "uvicorn connection placement").
    uvicorn.run(
        "service.app:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=args.workers,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        log_level="info",
    )


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    async def migrate(runtime: Runtime) -> None:
        applied = await runtime.database.migrate()
        print("applied: " + ", ".join(applied) if applied else "database is up to date")

    storage = msgspec.structs.replace(settings.storage, auto_migrate=False)
    with_runtime(msgspec.structs.replace(settings, storage=storage), migrate, clock=args.clock)


def _read_password(confirm: bool) -> str:
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError(
                "no password given: write it as the first line of stdin, or run in a terminal to be asked",
                EXIT_USAGE,
            )
        return password
    password = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Repeat password: ") != password:
        raise CliError("passwords do not match")
    return password


def cmd_users_create(settings: Settings, args: argparse.Namespace) -> None:
    password = None if args.invite else _read_password(confirm=True)

    async def create(runtime: Runtime) -> None:
        user = await runtime.user_admin.create(
            CLI, args.email, password=password, name=args.name, roles=args.role
        )
        print(f"{'invited' if password is None else 'created'} user {user.id}")

    with_runtime(settings, create, clock=args.clock)


def _set_disabled(disabled: bool) -> Callable[[Settings, argparse.Namespace], None]:
    def command(settings: Settings, args: argparse.Namespace) -> None:
        async def update(runtime: Runtime) -> None:
            user = await runtime.user_admin.set_disabled(CLI, args.email, disabled)
            print(f"user {user.id} {'disabled' if disabled else 'enabled'}")

        with_runtime(settings, update, clock=args.clock)

    return command


def cmd_users_roles(settings: Settings, args: argparse.Namespace) -> None:
    async def update(runtime: Runtime) -> None:
        if args.set is None:
            user = await runtime.user_admin.get(args.email)
        else:
            user = await runtime.user_admin.set_roles(CLI, args.email, args.set.split(","))
        print(",".join(user.roles) or "(no roles)")

    with_runtime(settings, update, clock=args.clock)


def cmd_clients_add(settings: Settings, args: argparse.Namespace) -> None:
    try:
        jwks = None if args.jwks is None else Path(args.jwks).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"--jwks {args.jwks}: {exc.strerror}", EXIT_USAGE) from exc

    async def add(runtime: Runtime) -> None:
        client, secret = await runtime.clients.register(
            args.name,
            args.id,
            redirect_uris=args.redirect_uri,
            post_logout_redirect_uris=args.post_logout_redirect_uri,
            public=args.public,
            grant_types=_split(args.grant) or None,
            scopes=_split(args.scope),
            first_party=args.first_party,
            id_token_signed_response_alg=args.id_token_alg,
            jwks=jwks,
            require_mfa=args.require_mfa,
        )
        print(f"client_id: {client.id}")
        print(f"grant_types: {' '.join(client.grant_types)}")
        if client.require_mfa:
            print("require_mfa: true")
        if secret is None:
            how = "private_key_jwt with its registered keys" if args.jwks else "PKCE only"
            print(f"no secret: the client authenticates with {how}", file=sys.stderr)
            return
        print(f"client_secret: {secret}")
        print("Store the secret now: it is not shown again.", file=sys.stderr)

    with_runtime(settings, add, clock=args.clock)


def _split(values: Sequence[str]) -> list[str]:
    """Repeated options whose values may also be comma- or space-separated lists."""
    return [part for value in values for part in value.replace(",", " ").split()]


def cmd_clients_list(settings: Settings, args: argparse.Namespace) -> None:
    async def show(runtime: Runtime) -> None:
        clients = await runtime.clients.list()
        if args.json:
            print_json(
                [
                    {"id": client.id, "name": client.name, "created_at": iso(client.created_at)}
                    for client in clients
                ]
            )
            return
        if not clients:
            print("no clients")
            return
        print("client_id\tname\tcreated")
        for client in clients:
            print(f"{client.id}\t{client.name}\t{when(client.created_at)}")

    with_runtime(settings, show, clock=args.clock)


def cmd_clients_remove(settings: Settings, args: argparse.Namespace) -> None:
    async def remove(runtime: Runtime) -> None:
        await runtime.clients.remove(args.id)
        print(f"removed client {args.id}")

    with_runtime(settings, remove, clock=args.clock)


def cmd_mail_list(settings: Settings, args: argparse.Namespace) -> None:
    async def show(runtime: Runtime) -> None:
        print(await list_mail(runtime.outbox, failed=args.failed, as_json=args.json))

    with_runtime(settings, show, clock=args.clock)


def cmd_mail_work(settings: Settings, args: argparse.Namespace) -> None:
    async def work(runtime: Runtime) -> None:
        handled = await deliver(runtime.mail_worker, once=args.once)
        if args.once:
            print(f"handled {handled} message(s)")

    with_runtime(settings, work, clock=args.clock)


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a port (1-65535)")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="idp", description="Identity provider service.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service (migrates first)")
    # No defaults here: IDP_HOST and IDP_PORT are read, and validated, with the other settings.
    serve.add_argument("--host", help="listen address (default IDP_HOST, else 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="listen port (default IDP_PORT, else 8000)")
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(handler=cmd_serve)

    sub.add_parser("migrate", help="apply pending database migrations").set_defaults(handler=cmd_migrate)

    add_keys_commands(sub)

    users = sub.add_parser("users", help="manage accounts").add_subparsers(dest="users", required=True)
    create = users.add_parser("create", help="create an account; password from stdin or a prompt")
    create.add_argument("email")
    create.add_argument("--name")
    create.add_argument("--role", action="append", default=[])
    create.add_argument(
        "--invite", action="store_true", help="no password: mail the account a set-password link instead"
    )
    create.set_defaults(handler=cmd_users_create)
    for name, disabled in (("disable", True), ("enable", False)):
        command = users.add_parser(name, help=f"{name} an account")
        command.add_argument("email")
        command.set_defaults(handler=_set_disabled(disabled))
    roles = users.add_parser("roles", help="show or set an account's roles")
    roles.add_argument("email")
    roles.add_argument("--set", help="comma-separated roles replacing the current ones")
    roles.set_defaults(handler=cmd_users_roles)
    add_mfa_commands(users)

    clients = sub.add_parser("clients", help="manage OAuth clients").add_subparsers(
        dest="clients", required=True
    )
    _add_client_parser(clients)
    clients_list = clients.add_parser("list", help="list clients")
    clients_list.add_argument("--json", action="store_true", help="a JSON array, one object per client")
    clients_list.set_defaults(handler=cmd_clients_list)
    remove = clients.add_parser("remove", help="delete a client")
    remove.add_argument("id")
    remove.set_defaults(handler=cmd_clients_remove)
    add_admin_commands(sub, users, clients)

    mail = sub.add_parser("mail", help="the mail outbox").add_subparsers(dest="mail", required=True)
    listing = mail.add_parser("list", help="newest outbox rows (recipients masked)")
    listing.add_argument("--failed", action="store_true", help="only mail that was given up on (dead)")
    listing.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    listing.set_defaults(handler=cmd_mail_list)
    work = mail.add_parser("work", help="run the delivery worker alone (idp serve runs one too)")
    work.add_argument("--once", action="store_true", help="send what is due now, then exit")
    work.set_defaults(handler=cmd_mail_work)
    return parser


def _add_client_parser(clients: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add = clients.add_parser("add", help="register a client; prints its secret once")
    add.add_argument("name")
    add.add_argument("--id", help="client id (default: random)")
    add.add_argument("--redirect-uri", action="append", default=[], help="exact redirect URI (repeatable)")
    add.add_argument(
        "--post-logout-redirect-uri", action="append", default=[], help="exact URI after logout (repeatable)"
    )
    add.add_argument("--public", action="store_true", help="no secret (SPA, mobile app); PKCE only")
    add.add_argument(
        "--grant",
        action="append",
        default=[],
        help="authorization_code, refresh_token, client_credentials (default: the code flow "
        "with redirect URIs, else client_credentials)",
    )
    add.add_argument("--scope", action="append", default=[], help="scopes beyond the OpenID Connect ones")
    add.add_argument("--first-party", action="store_true", help="skip the consent screen")
    add.add_argument(
        "--require-mfa", action="store_true", help="sign-ins for this client need a second factor"
    )
    add.add_argument(
        "--jwks", metavar="FILE", help="public JWKS: authenticate with private_key_jwt (RFC 7523)"
    )
    add.add_argument("--id-token-alg", default="RS256", choices=SIGNING_ALGS, help="ID token algorithm")
    add.set_defaults(handler=cmd_clients_add)


def main(argv: Sequence[str] | None = None, *, clock: Clock = system_clock) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    args.clock = clock
    try:
        settings = load_settings(_environment(args), overrides=_flag_overrides(args))
        args.handler(settings, args)
    except ConfigError as exc:
        print(f"idp: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StartupError as exc:
        print(f"idp: cannot start: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyFileError, StorageUnavailable) as exc:
        print(f"idp: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except IdPError as exc:
        print(f"idp: {exc.error}: {exc.description}", file=sys.stderr)
        return EXIT_REFUSED
    except CliError as exc:
        print(f"idp: {exc}", file=sys.stderr)
        return exc.code
    return 0


LISTEN_VARIABLES = ("IDP_HOST", "IDP_PORT")


def _environment(args: argparse.Namespace) -> Mapping[str, str]:
    """Only ``serve`` listens: the other commands do not read IDP_HOST or IDP_PORT, so a value
    meant for (or injected into) the server's environment cannot stop a migration. Kubernetes,
    for one, sets ``IDP_PORT=tcp://…`` in every pod of a namespace with a service named ``idp``."""
    if args.command == "serve":
        return os.environ
    return {name: value for name, value in os.environ.items() if name not in LISTEN_VARIABLES}


def _flag_overrides(args: argparse.Namespace) -> dict[str, str]:
    """``serve --host/--port`` win over the environment and are validated like it."""
    if args.command != "serve":
        return {}
    flags = {"IDP_HOST": args.host, "IDP_PORT": None if args.port is None else str(args.port)}
    return {name: value for name, value in flags.items() if value is not None}
