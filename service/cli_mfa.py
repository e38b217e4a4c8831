"""``idp users mfa reset EMAIL``: the admin escape hatch for an account locked out of its
second factors (audited; the owner is told by mail through the outbox). The same operation as
the admin API's ``POST /admin/v1/users/{id}/mfa/reset`` (service/admin/users.py)."""

from __future__ import annotations

import argparse

from service.admin.access import CLI
from service.cli_support import with_runtime
from service.config import Settings
from service.runtime import Runtime

__all__ = ["add_mfa_commands"]


def cmd_users_mfa_reset(settings: Settings, args: argparse.Namespace) -> None:
    async def reset(runtime: Runtime) -> None:
        user = await runtime.user_admin.get(args.email)
        before = await runtime.user_admin.reset_mfa(CLI, user.id)
        removed = [
            *(["authenticator app"] if before.totp else []),
            *([f"{before.passkeys} passkey(s)"] if before.passkeys else []),
            *([f"{before.recovery_codes} unused recovery code(s)"] if before.recovery_codes else []),
        ]
        print(f"user {user.id}: removed " + (", ".join(removed) if removed else "nothing (no factors)"))

    with_runtime(settings, reset, clock=args.clock)


def add_mfa_commands(users: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mfa = users.add_parser("mfa", help="an account's second factors").add_subparsers(
        dest="mfa", required=True
    )
    reset = mfa.add_parser("reset", help="remove every second factor of an account (mails the owner)")
    reset.add_argument("email")
    reset.set_defaults(handler=cmd_users_mfa_reset)
