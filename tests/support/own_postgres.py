"""A private PostgreSQL 15 cluster on a free loopback port, for tests that stop and restart it.

The machine's shared PostgreSQL is never touched: other fixtures hold pools to it. The cluster
lives in a temporary folder of its own (trust auth, fsync off) and is removed with it. initdb
refuses to run as root, so as root every server binary runs as the ``postgres`` OS user.
Anything that keeps it from starting raises: a test that needs it fails, it never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from tests.support.server import free_port

__all__ = ["PG_BIN", "OwnPostgres", "run_own_postgres"]

PG_BIN = Path(os.environ.get("IDP_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
OS_USER = "postgres"
COMMAND_TIMEOUT_SECONDS = 60
START_WAIT_SECONDS = 30


class OwnPostgres:
    """``start``, ``stop`` and ``restart`` a PostgreSQL of this test's own; ``url`` reaches it as
    the superuser ``postgres``. Call :meth:`cleanup` (or use :func:`run_own_postgres`) at the end:
    it stops the server with ``-m immediate`` and removes its folder."""

    def __init__(self) -> None:
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="idp-own-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        if self._as_postgres:
            # initdb refuses root; /tmp is traversable, the folder becomes postgres's.
            shutil.chown(self.root, OS_USER, OS_USER)
        try:
            self._initdb()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", OS_USER, "--", *command]
        try:
            done = subprocess.run(
                command,
                cwd=self.root,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"{' '.join(command)} failed: {exc}\n{self.log()}") from exc
        if done.returncode != 0:
            output = f"{done.stdout}{done.stderr}"
            raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}:\n{output}\n{self.log()}")
        return done

    def _pg_ctl(self, action: str, *args: str) -> None:
        self._run("pg_ctl", action, "-D", str(self.data), *args)

    def _initdb(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "50",
            "shared_buffers": "16MB",
            "logging_collector": "off",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/support/own_postgres.py\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no server log)"

    def start(self) -> None:
        self._pg_ctl("start", "-l", str(self.log_path), "-w", "-t", str(START_WAIT_SECONDS))
        self._wait_accepting()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server if it runs (``fast``: sessions are terminated, a clean shutdown)."""
        if self._postmaster_pid() is not None:
            self._pg_ctl("stop", "-m", mode, "-w", "-t", str(START_WAIT_SECONDS))

    def stop_after_shutdown_window(self, seconds: float) -> None:
        """Stop, first holding the server ``seconds`` in its shutting-down state, as a fast
        shutdown with a long checkpoint does: every client session is terminated and new
        connections are refused with 57P03 "the database system is shutting down" (not a
        refused TCP connection); then the server stops."""
        asyncio.run(self._shutdown_window(seconds))
        deadline = time.monotonic() + START_WAIT_SECONDS
        while self._postmaster_pid() is not None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the private PostgreSQL did not stop:\n{self.log()}")
            time.sleep(0.02)

    async def _shutdown_window(self, seconds: float) -> None:
        holder = await asyncpg.connect(self.url, timeout=5)
        terminate_others = (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        try:
            # A smart shutdown waits for the sessions to end; ours keeps it waiting.
            self._pg_ctl("stop", "-m", "smart", "--no-wait")
            await holder.execute(terminate_others)
            await asyncio.sleep(seconds)
            # Again, for a session that connected before the postmaster saw the signal.
            await holder.execute(terminate_others)
        finally:
            await holder.close()

    def restart(self, mode: str = "fast") -> None:
        self._pg_ctl("restart", "-l", str(self.log_path), "-m", mode, "-w", "-t", str(START_WAIT_SECONDS))
        self._wait_accepting()

    def cleanup(self) -> None:
        """Stop immediately, make sure the postmaster is gone, and remove the folder."""
        try:
            with contextlib.suppress(RuntimeError):
                self.stop("immediate")
            pid = self._postmaster_pid()
            if pid is not None and _alive(pid):
                # pg_ctl could not stop it: end the postmaster we started; its backends follow.
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if _alive(pid):
                    raise RuntimeError(f"the private PostgreSQL (pid {pid}) did not exit")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data / "postmaster.pid").read_text().split("\n", 1)[0]
        except OSError:
            return None
        return int(first) if first.strip().isdigit() else None

    def _wait_accepting(self) -> None:
        """pg_ctl -w returns once the server accepts connections; check from this side too."""
        deadline = time.monotonic() + START_WAIT_SECONDS
        while True:
            try:
                _ping(self.url)
                return
            except (OSError, asyncpg.PostgresError) as exc:
                if time.monotonic() > deadline:
                    message = f"the private PostgreSQL does not answer: {exc}\n{self.log()}"
                    raise RuntimeError(message) from exc
                time.sleep(0.05)


def _ping(url: str) -> None:
    async def ping() -> None:
        conn = await asyncpg.connect(url, timeout=2)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    asyncio.run(ping())


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (the postmaster is not our child)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@contextlib.contextmanager
def run_own_postgres() -> Iterator[OwnPostgres]:
    """A started private PostgreSQL, stopped (``-m immediate``) and removed afterwards."""
    server = OwnPostgres()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()
