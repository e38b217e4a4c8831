"""SIGTERM while requests are in flight: they complete, then the process exits cleanly."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.server import run_server


def test_in_flight_requests_finish_on_sigterm(tmp_path: Path) -> None:
    """Five logins held by the progressive delay (2 s) are answered although SIGTERM came first."""
    env = {"IDP_RATELIMIT_LOGIN_ACCOUNT_FAILURES": "1/600", "IDP_LOGIN_MAX_DELAY": "2"}
    with run_server(tmp_path, env) as server:
        body = {"email": "slow@example.com", "password": "wrong guess here"}
        assert httpx.post(f"{server.url}/v1/login", json=body, timeout=10).status_code == 401
        with ThreadPoolExecutor(max_workers=5) as pool:
            futures = [
                pool.submit(httpx.post, f"{server.url}/v1/login", json=body, timeout=15) for _ in range(5)
            ]
            time.sleep(0.5)
            server.process.send_signal(signal.SIGTERM)
            codes = [future.result().status_code for future in futures]
        assert codes == [401] * 5
        # uvicorn finishes the shutdown, then re-raises SIGTERM so supervisors see why it stopped.
        assert server.process.wait(timeout=15) in {0, -signal.SIGTERM}
        log = server.log()
        assert "Application shutdown complete" in log, "the lifespan closed the pools"
        assert "Finished server process" in log
