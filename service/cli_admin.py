"""``idp users list | delete | sessions | logout``, ``idp clients rotate-secret`` and
``idp audit list``: the same domain operations as the admin API (:mod:`service.admin`), run as
the actor ``cli``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from service.admin.access import CLI
from service.cli_support import iso, print_json, when, with_runtime
from service.config import Settings
from service.runtime import Runtime
from service.store.admin import AuditQuery

__all__ = ["add_admin_commands"]

Action = Callable[[Runtime, argparse.Namespace], Awaitable[None]]
if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _command(action: Action) -> Callable[[Settings, argparse.Namespace], None]:
    def command(settings: Settings, args: argparse.Namespace) -> None:
        async def run(runtime: Runtime) -> None:
            await action(runtime, args)

        with_runtime(settings, run, clock=args.clock)

    return command


def _instant(raw: str) -> float:
    """ISO 8601 (``2026-12-03`` or ``2026-12-03T08:00:00Z``); naive means UTC."""
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an ISO 8601 date or time") from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


async def users_list(runtime: Runtime, args: argparse.Namespace) -> None:
    page = await runtime.user_admin.search(
        email_prefix=args.email_prefix,
        created_from=args.created_from,
        created_until=args.created_until,
        cursor=args.cursor,
        limit=args.limit,
    )
    if args.json:
        print_json(
            [
                {
                    "id": str(user.id),
                    "email": user.email,
                    "roles": list(user.roles),
                    "disabled": user.disabled,
                    "created_at": iso(user.created_at),
                }
                for user in page.users
            ]
        )
    else:
        print("id\temail\troles\tdisabled\tcreated")
        for user in page.users:
            print(
                f"{user.id}\t{user.email}\t{','.join(user.roles)}\t{str(user.disabled).lower()}\t{when(user.created_at)}"
            )
    if page.next_cursor:
        print(f"more: --cursor {page.next_cursor}", file=sys.stderr)


async def users_delete(runtime: Runtime, args: argparse.Namespace) -> None:
    await runtime.user_admin.delete(CLI, args.user)
    print(f"deleted user {args.user}")


async def users_sessions(runtime: Runtime, args: argparse.Namespace) -> None:
    families = await runtime.user_admin.sessions(args.user)
    if args.json:
        print_json(
            [
                {
                    "id": f.id,
                    "client_id": f.client_id,
                    "origin": f.origin,
                    "created_at": iso(f.created_at),
                    "last_used_at": iso(f.last_used_at),
                    "expires_at": iso(f.expires_at),
                }
                for f in families
            ]
        )
        return
    print("session\tclient\torigin\tcreated\tlast used")
    for family in families:
        cells = [
            family.id,
            family.client_id or "-",
            family.origin,
            when(family.created_at),
            when(family.last_used_at),
        ]
        print("\t".join(cells))


async def users_logout(runtime: Runtime, args: argparse.Namespace) -> None:
    print(f"ended {await runtime.user_admin.end_sessions(CLI, args.user)} session(s)")


async def clients_rotate(runtime: Runtime, args: argparse.Namespace) -> None:
    print(f"client_secret: {await runtime.clients.rotate_secret(args.id)}")
    print("Store the secret now: it is not shown again; the old one no longer works.", file=sys.stderr)


async def audit_list(runtime: Runtime, args: argparse.Namespace) -> None:
    user_id = (await runtime.user_admin.get(args.user)).id if args.user else None
    events = await runtime.audit_log.query(
        AuditQuery(user_id=user_id, event=args.event, since=args.since, until=args.until, limit=args.limit)
    )
    rows: list[dict[str, object]] = [
        {
            "at": iso(event.at),
            "event": event.event,
            "outcome": event.outcome,
            "user_id": str(event.user_id) if event.user_id else None,
            "client_id": event.client_id,
            "scope": event.scope,
            "details": event.details,
        }
        for event in events
    ]
    if args.json:
        print_json(rows)
        return
    print("at\tevent\toutcome\tuser\tclient\tscope")
    for event in events:
        cells = [when(event.at), event.event, event.outcome, str(event.user_id or "-")]
        print("\t".join([*cells, event.client_id or "-", event.scope or "-"]))


def add_admin_commands(sub: Subparsers, users: Subparsers, clients: Subparsers) -> None:
    listing = users.add_parser("list", help="accounts in creation order (a page; --cursor for the next)")
    listing.add_argument("--email-prefix")
    listing.add_argument("--created-from", type=_instant, help="ISO 8601, inclusive")
    listing.add_argument("--created-until", type=_instant, help="ISO 8601, exclusive")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--cursor")
    listing.add_argument("--json", action="store_true", help="a JSON array, one object per account")
    listing.set_defaults(handler=_command(users_list))
    for name, action, text in (
        ("delete", users_delete, "delete an account: sessions, identities, links and mail go"),
        ("logout", users_logout, "end every session of an account"),
    ):
        command = users.add_parser(name, help=text)
        command.add_argument("user", help="email address or account id")
        command.set_defaults(handler=_command(action))
    sessions = users.add_parser("sessions", help="an account's live sessions")
    sessions.add_argument("user", help="email address or account id")
    sessions.add_argument("--json", action="store_true")
    sessions.set_defaults(handler=_command(users_sessions))

    rotate = clients.add_parser("rotate-secret", help="a new secret for a confidential client (shown once)")
    rotate.add_argument("id")
    rotate.set_defaults(handler=_command(clients_rotate))

    audit = sub.add_parser("audit", help="the stored audit trail").add_subparsers(dest="audit", required=True)
    events = audit.add_parser("list", help="audit events, newest first")
    events.add_argument("--user", help="email address or account id")
    events.add_argument("--event")
    events.add_argument("--since", type=_instant, help="ISO 8601, inclusive")
    events.add_argument("--until", type=_instant, help="ISO 8601, exclusive")
    events.add_argument("--limit", type=int, default=100)
    events.add_argument("--json", action="store_true")
    events.set_defaults(handler=_command(audit_list))
