"""docker-compose.yml is checked by reading it (no Docker engine here): every ``IDP_*`` variable
it sets is one the service reads, and the start-up order is expressed with health conditions."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from service.clients import declared_registrations
from service.config import load_settings

ROOT = Path(__file__).resolve().parents[1]


class RecordingEnvironment(Mapping[str, str]):
    """An environment that remembers every variable name looked up in it."""

    def __init__(self, values: dict[str, str]) -> None:
        self._values = values
        self.looked_up: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.looked_up.add(key)
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.looked_up.add(key)
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def variables_the_service_reads() -> set[str]:
    environment = RecordingEnvironment({})
    load_settings(environment)
    return {name for name in environment.looked_up if name.startswith("IDP_")}


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def idp_services(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in document["services"].items()
        if service.get("build") in (".", {"context": "."})
    }


def test_the_recorder_sees_the_core_variables() -> None:
    """The recording environment really observes what load_settings reads."""
    read = variables_the_service_reads()
    assert {"IDP_DATABASE_URL", "IDP_REDIS_URL", "IDP_ISSUER", "IDP_KEYS_DIR", "IDP_CONFIG"} <= read
    assert "IDP_NOT_A_SETTING" not in read


def test_every_idp_variable_in_compose_is_read_by_the_service() -> None:
    """A misspelt variable in compose would silently fall back to a default."""
    read = variables_the_service_reads()
    document = compose()
    services = idp_services(document)
    assert services, "compose builds the IdP image"
    for name, service in document["services"].items():
        environment = service.get("environment") or {}
        names = (
            environment if isinstance(environment, dict) else [item.split("=", 1)[0] for item in environment]
        )
        unknown = {variable for variable in names if variable.startswith("IDP_")} - read
        if name in services:
            assert not unknown, f"{name} sets variables the service never reads: {sorted(unknown)}"


def test_compose_settings_are_valid() -> None:
    """The IdP's compose environment passes the service's own start-up validation."""
    for service in idp_services(compose()).values():
        environment = {key: str(value) for key, value in (service.get("environment") or {}).items()}
        settings = load_settings({k: v for k, v in environment.items() if k != "IDP_CONFIG"})
        assert settings.storage.database_kind == "postgresql"


def test_start_order_uses_health_conditions() -> None:
    """The IdP waits for healthy PostgreSQL and Redis and a completed migration."""
    document = compose()
    services = document["services"]
    assert services["idp"]["depends_on"]["idp-migrate"]["condition"] == "service_completed_successfully"
    assert services["idp"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["idp-migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("postgres", "redis", "idp", "better-auth", "api"):
        assert "healthcheck" in services[name], f"{name} has a health check"
    assert "./keys:/app/keys:ro" in services["idp"]["volumes"]
    assert services["api"]["depends_on"]["idp"]["condition"] == "service_healthy"


def test_mounted_trust_config_is_valid(tmp_path: Path) -> None:
    """The TOML the compose IdP mounts parses, trusts the Better Auth service, and declares the
    client whose secret compose passes in."""
    document = compose()
    idp = document["services"]["idp"]
    mount = next(volume for volume in idp["volumes"] if volume.endswith(":/app/config/idp.toml:ro"))
    trust_file = ROOT / mount.split(":")[0]
    settings = load_settings({"IDP_CONFIG": str(trust_file), "WEB_CLIENT_SECRET": "x" * 40})
    (issuer,) = settings.trust.issuers.values()
    better_auth = document["services"]["better-auth"]["environment"]
    assert issuer.issuer == better_auth["BA_BASE_URL"]
    assert issuer.audiences == [better_auth["BA_JWT_AUDIENCE"]]
    assert issuer.jwks_uri.startswith("http://better-auth:3000/")
    assert "web" in declared_registrations(settings.trust.clients), "valid as a registration too"


def test_mail_goes_to_mailpit() -> None:
    """The IdP sends through Mailpit's SMTP port (1025) and waits for it; its UI is on 8025;
    links in mail are built from the public URL the browser uses."""
    services = compose()["services"]
    mailpit, idp = services["mailpit"], services["idp"]
    assert {"1025:1025", "8025:8025"} <= {port.split()[0] for port in mailpit["ports"]}
    assert "healthcheck" in mailpit
    assert idp["depends_on"]["mailpit"]["condition"] == "service_healthy"
    settings = load_settings({k: str(v) for k, v in idp["environment"].items() if k != "IDP_CONFIG"})
    assert settings.mail.smtp is not None
    assert (settings.mail.smtp.host, settings.mail.smtp.port) == ("mailpit", 1025)
    assert settings.mail.public_url == "http://localhost:8000"


API_DIR = ROOT / "examples" / "fastapi-api"


def locked_versions(lock: Path) -> dict[str, str]:
    packages = tomllib.loads(lock.read_text())["package"]
    return {package["name"]: package["version"] for package in packages if "version" in package}


def test_api_service_is_built_not_installed_at_start() -> None:
    """The FastAPI example runs from an image built out of its own folder: no package is
    fetched when the container starts (no network needed, no version drift)."""
    api = compose()["services"]["api"]
    build = api["build"]
    context = build if isinstance(build, str) else build["context"]
    assert (ROOT / context).resolve() == API_DIR
    assert "image" not in api, "a stock image would need its packages installed at start"
    assert "command" not in api, "the image's own CMD starts the API"
    dockerfile = (API_DIR / "Dockerfile").read_text()
    assert "pip install" not in dockerfile
    assert "COPY pyproject.toml uv.lock ./" in dockerfile
    assert "uv sync --locked --no-dev" in dockerfile, "installs exactly the lock, or fails the build"


def test_api_image_installs_the_versions_the_tests_run() -> None:
    """The example's lock pins its direct dependencies exactly and resolves every package to the
    version of the repository's own lock, under which the example's tests pass."""
    project = tomllib.loads((API_DIR / "pyproject.toml").read_text())["project"]
    pins = dict(requirement.split("==", 1) for requirement in project["dependencies"])
    assert all(version[0].isdigit() for version in pins.values()), "direct dependencies are exact"
    example, tested = locked_versions(API_DIR / "uv.lock"), locked_versions(ROOT / "uv.lock")
    assert {name: example[name] for name in pins} == pins, "uv.lock is up to date with pyproject.toml"
    shared = {name: version for name, version in example.items() if name != project["name"]}
    assert shared == {name: tested[name] for name in shared}


def test_api_image_has_every_module_the_example_imports() -> None:
    """Each third-party module that app.py and idp_auth.py import comes from a locked package."""
    imported: set[str] = set()
    for source in ("app.py", "idp_auth.py"):
        for node in ast.walk(ast.parse((API_DIR / source).read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"idp_auth"}
    distributions = importlib.metadata.packages_distributions()
    needed = {distributions[module][0].lower() for module in third_party} | {"uvicorn"}
    assert needed <= set(locked_versions(API_DIR / "uv.lock")), needed
    assert {"fastapi", "joserfc", "httpx"} <= needed, "the import scan found the example's imports"
