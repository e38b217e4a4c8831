"""Free ports, the bytecode cache of the Python processes a bench starts, and what ``/proc``
tells about processes: CPU, threads, RSS, TCP connections.

Linux only; elsewhere every reading degrades to NaN, 0 or an empty list (the benches still run,
their CPU columns say "nan").
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from service.passwords import huge_page_mode

__all__ = [
    "BYTECODE_CACHE",
    "CLOCK_TICKS",
    "CORES",
    "HAS_PROC",
    "CpuReport",
    "CpuSnapshot",
    "WorkerCpu",
    "bytecode_cache_env",
    "cmdline",
    "connection_owner",
    "cpu_report",
    "cpu_seconds",
    "descendants",
    "established_connections",
    "free_port",
    "involuntary_switches",
    "machine",
    "rss_bytes",
    "snapshot",
    "system_cpu",
    "thread_ids",
    "worker_pids",
]

CORES = os.cpu_count() or 2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
HAS_PROC = Path("/proc/self/stat").is_file()
BYTECODE_CACHE = Path(
    os.environ.get("PYTHONPYCACHEPREFIX") or Path(tempfile.gettempdir()) / "idp-bench-pycache"
)


def bytecode_cache_env() -> dict[str, str]:
    """Environment for a Python process the bench starts: compiled modules cached in
    ``BYTECODE_CACHE`` (outside the checkout), also when ``PYTHONDONTWRITEBYTECODE`` is set.

    Without a cache every ``idp serve`` process compiles the whole service and its dependencies
    again (spawned uvicorn workers too): ~2.5 s of CPU per process on 2 cores instead of ~0.7 s,
    nine server start-ups in ``bench/run.py --quick``. Start-ups are never measured.
    """
    return {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(BYTECODE_CACHE)}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stat_fields(path: str) -> list[str] | None:
    """Fields of a /proc stat file after the ``(comm)``: index 0 is the state (field 3)."""
    try:
        raw = Path(path).read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU seconds of a process (all its threads) or of one of its threads."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    fields = _stat_fields(path)
    if fields is None:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def rss_bytes(pid: int) -> int:
    """Resident set size of a process in bytes (0 when it is gone or there is no /proc)."""
    try:
        resident = Path(f"/proc/{pid}/statm").read_text().split()[1]
    except (OSError, IndexError):
        return 0
    return int(resident) * PAGE_SIZE


def thread_ids(pid: int) -> list[int]:
    try:
        return [int(name) for name in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def involuntary_switches(pid: int) -> int:
    """Sum over the process's threads of the times the scheduler preempted them."""
    total = 0
    for tid in thread_ids(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
                if line.startswith("nonvoluntary_ctxt_switches:"):
                    total += int(line.split()[1])
    return total


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            fields = _stat_fields(f"/proc/{name}/stat")
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(name))
    found: list[int] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def worker_pids(supervisor: int) -> list[int]:
    """The worker processes of a uvicorn supervisor (its descendants minus multiprocessing's helper)."""
    return [pid for pid in descendants(supervisor) if "resource_tracker" not in cmdline(pid)]


def _tcp_rows() -> list[list[str]]:
    rows: list[list[str]] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            rows += [row.split() for row in Path(table).read_text().splitlines()[1:]]
    return rows


def _socket_inodes(pid: int) -> set[str]:
    found: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:"):
                    found.add(target)
    return found


def established_connections(port: int, pids: Sequence[int]) -> dict[int, int]:
    """Accepted (ESTABLISHED) TCP connections on ``port`` held by each of ``pids``."""
    inodes = {
        f"socket:[{cols[9]}]"
        for cols in _tcp_rows()
        if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "01"
    }
    return {pid: len(_socket_inodes(pid) & inodes) for pid in pids}


def connection_owner(server_port: int, client_port: int, pids: Sequence[int]) -> int | None:
    """The pid among ``pids`` that accepted the connection from ``client_port`` (None: not yet)."""
    inode = None
    for cols in _tcp_rows():
        local, remote = cols[1].rsplit(":", 1)[1], cols[2].rsplit(":", 1)[1]
        if int(local, 16) == server_port and int(remote, 16) == client_port:
            inode = f"socket:[{cols[9]}]"
    if inode is None:
        return None
    for pid in pids:
        if inode in _socket_inodes(pid):
            return pid
    return None


def huge_pages() -> str:
    """The kernel's transparent huge page mode, or "unknown". It moves the argon2 figures by
    half: libsodium maps each hash's 19 MiB afresh, ~7.5 ms of kernel time per hash in 4 KiB
    pages ("madvise", "never") against ~1.8 ms in 2 MiB pages ("always"); docs/PERFORMANCE.md."""
    return huge_page_mode() or "unknown"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.partition(":")[2].split())
    return "unknown CPU"


def machine() -> str:
    """What a figure's machine was, for a report's first line: CPUs, model, huge page mode."""
    return f"{CORES} CPUs ({_cpu_model()}), transparent huge pages {huge_pages()}"


def system_cpu() -> tuple[int, int, int]:
    """(busy, idle, steal) jiffies from /proc/stat, zeros when unavailable."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return 0, 0, 0
    values = [int(v) for v in first]
    idle = values[3] + values[4]  # idle + iowait
    steal = values[7] if len(values) > 7 else 0
    return sum(values[:8]) - idle - steal, idle, steal


# --------------------------------------------------------------------------------------------
# CPU over a window: snapshot before, snapshot after, report
# --------------------------------------------------------------------------------------------


@dataclass
class CpuSnapshot:
    at: float
    system: tuple[int, int, int]
    bench: float  # this process's CPU seconds (the load generator)
    probe: float  # a helper process's CPU seconds (NaN without one)
    processes: dict[int, float]  # server pid -> cpu seconds
    loop_threads: dict[int, float]  # server pid -> cpu seconds of its main (event-loop) thread
    preemptions: dict[int, int]  # server pid -> involuntary context switches (all threads)
    threads: dict[int, int]  # server pid -> number of threads
    connections: dict[int, int]  # server pid -> accepted client connections on the port
    rss: dict[int, int]  # server pid -> resident bytes


def snapshot(server_pids: Sequence[int], probe_pid: int | None, port: int) -> CpuSnapshot:
    pids = list(dict.fromkeys(server_pids))
    return CpuSnapshot(
        at=time.monotonic(),
        system=system_cpu(),
        bench=time.process_time(),
        probe=cpu_seconds(probe_pid) if probe_pid else math.nan,
        processes={pid: cpu_seconds(pid) for pid in pids},
        loop_threads={pid: cpu_seconds(pid, pid) for pid in pids},
        preemptions={pid: involuntary_switches(pid) for pid in pids},
        threads={pid: len(thread_ids(pid)) for pid in pids},
        connections=established_connections(port, pids),
        rss={pid: rss_bytes(pid) for pid in pids},
    )


@dataclass
class WorkerCpu:
    pid: int
    cores: float
    loop_cores: float  # the event-loop (main) thread
    threads: int
    connections: int  # client connections it held at the end of the window
    preemptions_per_second: float
    rss_bytes: int  # at the end of the window


@dataclass
class CpuReport:
    seconds: float
    busy_fraction: float
    steal_fraction: float
    bench_cores: float
    probe_cores: float
    workers: list[WorkerCpu]
    supervisor_cores: float

    @property
    def server_cores(self) -> float:
        return self.supervisor_cores + sum(worker.cores for worker in self.workers)

    @property
    def foreign_cores(self) -> float:
        """CPU used by processes that are neither the server nor the bench (other load, kernel)."""
        ours = self.bench_cores + (0.0 if math.isnan(self.probe_cores) else self.probe_cores)
        return max(0.0, self.busy_fraction * CORES - ours - self.server_cores)


def cpu_report(before: CpuSnapshot, after: CpuSnapshot, workers: Sequence[int], supervisor: int) -> CpuReport:
    """CPU between two snapshots; ``workers`` may contain ``supervisor`` (a single-process server)."""
    seconds = after.at - before.at
    busy = after.system[0] - before.system[0]
    idle = after.system[1] - before.system[1]
    steal = after.system[2] - before.system[2]
    total = busy + idle + steal
    return CpuReport(
        seconds=seconds,
        busy_fraction=busy / total if total else math.nan,
        steal_fraction=steal / total if total else math.nan,
        bench_cores=(after.bench - before.bench) / seconds,
        probe_cores=(after.probe - before.probe) / seconds,
        workers=[
            WorkerCpu(
                pid=pid,
                cores=(after.processes[pid] - before.processes[pid]) / seconds,
                loop_cores=(after.loop_threads[pid] - before.loop_threads[pid]) / seconds,
                threads=after.threads[pid],
                connections=after.connections[pid],
                preemptions_per_second=(after.preemptions[pid] - before.preemptions[pid]) / seconds,
                rss_bytes=after.rss[pid],
            )
            for pid in workers
        ],
        supervisor_cores=(
            (after.processes[supervisor] - before.processes[supervisor]) / seconds
            if supervisor not in workers
            else 0.0
        ),
    )
