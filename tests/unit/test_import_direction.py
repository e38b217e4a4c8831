"""Layers import one way: every ``import`` in ``service/`` follows the layout table of
docs/ARCHITECTURE.md (``LAYERS`` below is that table: a module's layer, and the layers it may
import). Read with :mod:`ast`, so nothing is executed.

It would fail on each of the three back-edges the tree had before issue 11 (reproduced on
synthetic modules in :func:`test_the_old_back_edges_are_refused`):

1. ``service.config`` importing ``service.abuse``, ``service.exchange.policy`` and
   ``service.ratelimit`` (config may import only ``errors``, ``limits`` and ``trust``);
2. ``service.ratelimit`` importing ``service.store.redis_link`` (a lower service may not
   reach into storage: the Redis GCRA script lives in ``service/store/redis_limits.py``);
3. ``service.store.factory`` importing ``service.config`` (stores get values, never the
   settings: opening them is the composition root's job, ``service/backends.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[2] / "service"

# Layer → the layers its modules may import (their own layer included where listed).
# A module's layer is the first prefix of its dotted name (without ``service.``) found in
# ``MEMBERS``, longest first.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "base": frozenset({"base"}),
    "config": frozenset({"base", "config"}),
    "store": frozenset({"base", "store"}),
    "lower": frozenset({"base", "lower"}),
    "domain": frozenset({"base", "config", "store", "lower", "domain"}),
    "composition": frozenset({"base", "config", "store", "lower", "domain", "composition"}),
    "http": frozenset({"base", "config", "store", "lower", "domain", "composition", "http"}),
    "entry": frozenset({"base", "config", "store", "lower", "domain", "composition", "http", "entry"}),
}
MEMBERS: dict[str, str] = {
    "errors": "base",
    "clock": "base",
    "audit": "base",
    "limits": "base",
    "bounded_json": "base",
    "config": "config",
    "trust": "config",
    "sections": "config",
    "store": "store",
    "keys": "lower",
    "tokens": "lower",
    "passwords": "lower",
    "emails": "lower",
    "ratelimit": "lower",
    "accounts": "domain",
    "sessions": "domain",
    "clients": "domain",
    "abuse": "domain",
    "exchange": "domain",
    "grants": "domain",
    "oidc": "domain",
    "mail": "domain",
    "lifecycle": "domain",
    "mail.settings": "config",
    "mfa.settings": "config",
    "mfa": "domain",
    "admin.settings": "config",
    "admin": "domain",
    "runtime": "composition",
    "backends": "composition",
    "http": "http",
    "app": "entry",
    "cli": "entry",
    "cli_keys": "entry",
    "cli_support": "entry",
    "cli_mfa": "entry",
    "cli_admin": "entry",
    "__main__": "entry",
    "templates": "http",
    "static": "http",
}

# Edges known to run against the table, each with the way out. Keep this empty; an entry
# here is a debt, reported, not a permission.
KNOWN_DEBTS: dict[tuple[str, str], str] = {}


def layer_of(module: str) -> str:
    """The layer of a dotted ``service.…`` module name."""
    parts = module.split(".")[1:]
    for length in range(len(parts), 0, -1):
        layer = MEMBERS.get(".".join(parts[:length]))
        if layer is not None:
            return layer
    raise LookupError(f"{module} is in no layer: add it to the layout table and MEMBERS")


def imports_of(source: str, module: str) -> set[str]:
    """``service.…`` modules imported by ``source`` (relative imports resolved against ``module``)."""
    found: set[str] = set()
    package = module.split(".")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level])
                found.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                found.add(node.module)
    return {name for name in found if name == "service" or name.startswith("service.")}


def violations(modules: dict[str, str]) -> list[str]:
    """Every import from ``modules`` (name → source) that runs against the table."""
    wrong = []
    for module, source in sorted(modules.items()):
        if module == "service":
            continue
        allowed = MAY_IMPORT[layer_of(module)]
        for target in sorted(imports_of(source, module)):
            if target == "service":
                continue
            if layer_of(target) not in allowed and (module, target) not in KNOWN_DEBTS:
                wrong.append(f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})")
    return wrong


def service_modules() -> dict[str, str]:
    modules = {}
    for path in SERVICE.rglob("*.py"):
        parts = path.relative_to(SERVICE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path.read_text()
    return modules


def test_every_import_points_down() -> None:
    """No module of the service imports a layer above its own (nor one beside it that the table
    does not list)."""
    assert violations(service_modules()) == []


def test_every_module_is_in_a_layer() -> None:
    """A new module or folder must be placed in the layout table before it can be imported."""
    for module in service_modules():
        if module != "service":
            assert layer_of(module) in MAY_IMPORT


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("service.config", "from service.abuse import LimitRules"),
        ("service.config", "from service.exchange.policy import TrustConfig"),
        ("service.config", "from service.ratelimit import Rule, parse_rule"),
        ("service.ratelimit", "from service.store.redis_link import LuaScript, RedisLink"),
        ("service.store.factory", "from service.config import Settings"),
        ("service.store.factory", "from ..config import Settings"),
        ("service.sessions", "import service.http.oauth"),
    ],
    ids=[
        "config-abuse",
        "config-exchange-policy",
        "config-ratelimit",
        "ratelimit-store",
        "store-config",
        "store-config-relative",
        "domain-http",
    ],
)
def test_the_old_back_edges_are_refused(module: str, source: str) -> None:
    """Each back-edge of the tree before issue 11, put back on a synthetic module, is reported."""
    assert violations({module: source}) == [
        f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})"
        for target in sorted(imports_of(source, module))
    ]
