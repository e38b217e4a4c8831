"""``idp keys …``: the key folder's life cycle from the command line (see service/keys/files.py)."""

from __future__ import annotations

import argparse
import sys

from service.audit import audit
from service.cli_support import EXIT_USAGE, CliError, iso, print_json, when
from service.config import SIGNING_ALGS, Settings
from service.keys.files import KeyInService, add_signing_key, load_keys, prune_keys, rotate_keys

__all__ = ["add_keys_commands"]


def cmd_keys_generate(settings: Settings, args: argparse.Namespace) -> None:
    try:
        key = add_signing_key(
            settings.keys.dir, args.alg or settings.keys.signing_alg, args.clock(), force=args.force
        )
    except KeyInService as exc:
        raise CliError(
            f"a key already signs or is staged to: {exc}. Use `idp keys rotate`: the new key is "
            "published at once and signs once verifiers' cached JWKS have seen it. "
            "--force replaces every key now (a compromised key)"
        ) from exc
    audit("key_generated", kid=key.kid, alg=key.alg, forced=args.force)
    print(f"generated {key.alg} key {key.kid} (signing now)")
    if args.force:
        print(
            "idp: the previous keys retired now; verifiers whose cached JWKS lacks the new key "
            "reject its tokens until they fetch it again",
            file=sys.stderr,
        )


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> None:
    now = args.clock()
    keys = load_keys(settings.keys.dir)
    if args.json:
        print_json(
            [
                {
                    "kid": key.kid,
                    "alg": key.alg,
                    "state": key.state(now),
                    "created_at": iso(key.created_at),
                    "activates_at": iso(key.activates_at),
                    "retires_at": iso(key.retires_at),
                }
                for key in keys
            ]
        )
        return
    if not keys:
        print(f"no keys in {settings.keys.dir}")
        return
    print(f"{'kid':<45} {'alg':<6} {'state':<8} {'activates':<21} retires")
    for key in keys:
        print(
            f"{key.kid:<45} {key.alg:<6} {key.state(now):<8} "
            f"{when(key.activates_at):<21} {when(key.retires_at)}"
        )


def cmd_keys_rotate(settings: Settings, args: argparse.Namespace) -> None:
    delay = settings.keys.effective_rotation_delay if args.delay is None else args.delay
    if delay < settings.keys.minimum_rotation_delay and not args.force:
        raise CliError(
            f"--delay {delay} is shorter than IDP_JWKS_MAX_AGE + IDP_KEYS_RELOAD_INTERVAL "
            f"({settings.keys.minimum_rotation_delay}): verifiers with a cached JWKS would reject "
            "the new key's tokens (use --force)",
            EXIT_USAGE,
        )
    key = rotate_keys(settings.keys.dir, args.alg or settings.keys.signing_alg, args.clock(), delay)
    audit("key_rotation", kid=key.kid, alg=key.alg, activates_at=when(key.activates_at))
    print(f"published {key.alg} key {key.kid}; it signs from {when(key.activates_at)}")


def cmd_keys_prune(settings: Settings, args: argparse.Namespace) -> None:
    removed = prune_keys(settings.keys.dir, args.clock(), settings.sessions.access_token_ttl)
    for key in removed:
        audit("key_pruned", kid=key.kid)
    print("removed: " + ", ".join(k.kid for k in removed) if removed else "nothing to prune")


def add_keys_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="manage signing keys").add_subparsers(dest="keys", required=True)
    generate = keys.add_parser("generate", help="the first key, which signs at once (later: rotate)")
    generate.add_argument("--alg", choices=SIGNING_ALGS)
    generate.add_argument("--force", action="store_true", help="retire every other key now (compromise)")
    generate.set_defaults(handler=cmd_keys_generate)
    keys_list = keys.add_parser("list", help="list keys and their states")
    keys_list.add_argument("--json", action="store_true", help="a JSON array, one object per key")
    keys_list.set_defaults(handler=cmd_keys_list)
    rotate = keys.add_parser("rotate", help="publish a new key that signs after a delay")
    rotate.add_argument("--alg", choices=SIGNING_ALGS)
    rotate.add_argument("--delay", type=int, help="seconds until it signs (default IDP_KEY_ROTATION_DELAY)")
    rotate.add_argument("--force", action="store_true", help="allow a delay below IDP_JWKS_MAX_AGE")
    rotate.set_defaults(handler=cmd_keys_rotate)
    keys.add_parser("prune", help="remove keys no valid token needs").set_defaults(handler=cmd_keys_prune)
