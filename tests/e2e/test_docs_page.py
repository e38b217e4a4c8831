"""The API docs page (``/schema``) renders in a real browser under its own CSP, and its pinned
Redoc file matches the page's SRI hash (issue 17).

Redoc comes from the npm registry (``npm pack redoc@<pinned>``: the tarball jsDelivr serves
from); chromium gets it in place of the CDN URL, every other non-IdP request is aborted. Needs
``/usr/bin/chromium`` (or ``E2E_CHROMIUM``), ``node`` and ``npm ci`` in ``tests/e2e``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from service.http.security_headers import REDOC_JS, REDOC_SRI, REDOC_VERSION
from tests.support.server import run_server

pytestmark = pytest.mark.slow

E2E_DIR = Path(__file__).resolve().parent


def redoc_bundle(workdir: Path) -> Path:
    """``bundles/redoc.standalone.js`` of the pinned npm release."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is required on the PATH")
    packed = subprocess.run(
        [npm, "pack", f"redoc@{REDOC_VERSION}", "--silent", "--pack-destination", str(workdir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    with tarfile.open(workdir / packed.stdout.strip().splitlines()[-1]) as tarball:
        member = tarball.getmember("package/bundles/redoc.standalone.js")
        member.name = "redoc.standalone.js"
        tarball.extract(member, workdir, filter="data")
    return workdir / "redoc.standalone.js"


def test_the_docs_render_under_their_csp_with_the_pinned_file(tmp_path: Path) -> None:
    """The SRI hash in the page is the pinned file's; chromium runs it under the page's CSP and
    renders the operations; the only refusal is Redoc's logo from its own site."""
    chromium = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
    node = shutil.which("node")
    if node is None or not Path(chromium).is_file():
        pytest.fail("node and chromium are required (apt-get install -y chromium; npm ci in tests/e2e)")
    bundle = redoc_bundle(tmp_path)
    digest = base64.b64encode(hashlib.sha384(bundle.read_bytes()).digest()).decode()
    assert f"sha384-{digest}" == REDOC_SRI
    workdir = tmp_path / "idp"
    workdir.mkdir()
    with run_server(workdir) as server:
        env = {**os.environ, "IDP_URL": server.url, "REDOC_URL": REDOC_JS, "REDOC_FILE": str(bundle)}
        env["CHROMIUM"] = chromium
        script = [node, str(E2E_DIR / "docs.mjs")]
        result = subprocess.run(script, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["rendered"], outcome
    assert outcome["errors"] == []
    assert all("redoc.ly" in violation and "img-src" in violation for violation in outcome["violations"])
