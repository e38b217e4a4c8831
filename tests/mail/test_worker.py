"""The delivery worker over real outboxes: no row is in flight twice, retries back off with
jitter on the injected clock, give up into dead, and a crash resends the same Message-ID."""

from __future__ import annotations

import asyncio
import email
import logging
import random
from email.message import EmailMessage
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from service.clock import FrozenClock
from service.mail.message import build_email
from service.mail.transports import FileTransport, TransportError
from service.mail.worker import DeliveryWorker, RetryPolicy, retry_delay
from tests.conftest import START
from tests.mail.conftest import MailStores, mail_for

POLICY = RetryPolicy(max_attempts=3, base_delay=10.0, max_delay=100.0, lease=60.0)


class Recorder:
    """A transport that keeps what it was given, can fail the first N sends, and notices when
    one Message-ID is in flight twice at once."""

    def __init__(self, failures: list[TransportError] | None = None, delay: float = 0.0) -> None:
        self.sent: list[EmailMessage] = []
        self.failures = list(failures or [])
        self.delay = delay
        self.in_flight: set[str] = set()
        self.overlaps = 0

    async def send(self, message: EmailMessage) -> None:
        message_id = str(message["Message-ID"])
        if message_id in self.in_flight:
            self.overlaps += 1
        self.in_flight.add(message_id)
        try:
            await asyncio.sleep(self.delay)
            if self.failures:
                raise self.failures.pop(0)
            self.sent.append(message)
        finally:
            self.in_flight.discard(message_id)


def worker(stores: MailStores, transport: object, clock: FrozenClock, batch: int = 10) -> DeliveryWorker:
    return DeliveryWorker(
        outbox=stores.outbox,
        transport=transport,  # type: ignore[arg-type]
        sender="IdP <no-reply@idp.test>",
        clock=clock,
        policy=POLICY,
        rng=random.Random(7),
        batch=batch,
    )


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 8, 20])
def test_retry_delay_doubles_with_jitter_up_to_the_cap(attempt: int) -> None:
    """Delay for attempt n lies in [c/2, c] with c = min(max, base * 2^(n-1))."""
    ceiling = min(POLICY.max_delay, POLICY.base_delay * 2 ** (attempt - 1))
    delays = {retry_delay(attempt, POLICY, random.Random(seed)) for seed in range(20)}
    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(delays) > 1, "jittered"


async def test_two_workers_never_send_one_row_twice(two_instances: tuple[MailStores, MailStores]) -> None:
    """Two instances' workers drain 30 rows concurrently through slow sends: each Message-ID
    is sent exactly once and never in flight on both at the same moment."""
    one, two = two_instances
    for i in range(30):
        await one.outbox.enqueue(mail_for(f"user{i}@example.com"))
    clock = FrozenClock(START)
    transport = Recorder(delay=0.005)
    first, second = worker(one, transport, clock, batch=3), worker(two, transport, clock, batch=3)

    async def drain(w: DeliveryWorker) -> int:
        total = 0
        while claimed := await w.run_once():
            total += claimed
        return total

    counts = await asyncio.gather(drain(first), drain(second))
    ids = [str(m["Message-ID"]) for m in transport.sent]
    assert (len(ids), len(set(ids)), transport.overlaps, sum(counts)) == (30, 30, 0, 30)
    assert await one.outbox.count_by_state() == {"sent": 30}


async def test_a_failed_send_is_retried_after_the_backoff(mail: MailStores) -> None:
    """451 then success: the row waits its jittered delay on the injected clock, then arrives once."""
    await mail.outbox.enqueue(mail_for())
    clock = FrozenClock(START)
    transport = Recorder([TransportError("smtp 451")])
    w = worker(mail, transport, clock)
    assert await w.run_once() == 1
    [row] = await mail.outbox.list_mail("pending", 1)
    assert POLICY.base_delay / 2 <= row.next_attempt_at - START <= POLICY.base_delay
    assert (row.attempts, row.last_error) == (1, "smtp 451")
    clock.now = row.next_attempt_at - 0.5
    assert await w.run_once() == 0, "not due yet"
    clock.now = row.next_attempt_at
    assert await w.run_once() == 1
    assert len(transport.sent) == 1
    assert await mail.outbox.count_by_state() == {"sent": 1}


async def test_after_max_attempts_the_row_is_dead(mail: MailStores) -> None:
    """Three temporary failures with max_attempts=3: dead, listed with its last error."""
    await mail.outbox.enqueue(mail_for())
    clock = FrozenClock(START)
    transport = Recorder([TransportError(f"smtp 45{i}") for i in range(5)])
    w = worker(mail, transport, clock)
    for _ in range(POLICY.max_attempts):
        assert await w.run_once() == 1
        clock.advance(POLICY.max_delay)
    assert await w.run_once() == 0
    [dead] = await mail.outbox.list_mail("dead", 10)
    assert (dead.attempts, dead.last_error, transport.sent) == (3, "smtp 452", [])


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_permanent_rejection_is_dead_at_once_and_counted(mail: MailStores) -> None:
    """A 5xx cannot succeed later: no retry; the failure counter, the latency histogram and the
    depth gauge (Prometheus) show it."""
    await mail.outbox.enqueue(mail_for(kind="perm"))
    await mail.outbox.enqueue(mail_for(kind="perm"))
    failures, timings = (
        sample("idp_mail_send_failures_total", kind="perm", outcome="dead"),
        sample("idp_mail_send_seconds_count"),
    )
    w = worker(mail, Recorder([TransportError("smtp 550", permanent=True)]), FrozenClock(START), batch=1)
    await w.run_once()
    await w.refresh_depth()
    assert await mail.outbox.count_by_state() == {"dead": 1, "pending": 1}
    assert sample("idp_mail_send_failures_total", kind="perm", outcome="dead") == failures + 1
    assert sample("idp_mail_send_seconds_count") == timings + 1
    assert (sample("idp_mail_outbox", state="dead"), sample("idp_mail_outbox", state="pending")) == (1, 1)


async def test_a_crash_between_send_and_mark_resends_the_same_message(
    mail: MailStores, tmp_path: Path
) -> None:
    """A worker that sent and died before marking: after the lease the next worker sends the
    identical message (same Message-ID, same Date), which overwrites the same .eml file."""
    await mail.outbox.enqueue(mail_for())
    files = FileTransport(tmp_path / "mail")
    [claimed] = await mail.outbox.claim(START, POLICY.lease, 10)
    await files.send(build_email(claimed, "IdP <no-reply@idp.test>"))  # ... and the process dies here
    first = sorted((tmp_path / "mail").iterdir())
    clock = FrozenClock(START + POLICY.lease + 1)
    assert await worker(mail, files, clock).run_once() == 1
    second = sorted((tmp_path / "mail").iterdir())
    assert [p.name for p in second] == [p.name for p in first]
    message = email.message_from_bytes(second[0].read_bytes())
    assert message["Message-ID"] == claimed.message_id
    assert await mail.outbox.count_by_state() == {"sent": 1}


async def test_file_transport_logs_where_without_content(
    mail: MailStores, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One .eml per message (mode 0600) and one log line naming it; no body, no full address."""
    queued = mail_for("secret.person@example.com")
    await mail.outbox.enqueue(queued)
    caplog.set_level(logging.INFO, logger="idp.mail")
    await worker(mail, FileTransport(tmp_path / "mail"), FrozenClock(START)).run_once()
    [path] = list((tmp_path / "mail").glob("*.eml"))
    assert path.stat().st_mode & 0o777 == 0o600
    lines = [r.getMessage() for r in caplog.records if r.name == "idp.mail"]
    assert lines == [f"mail to s***@example.com written to {path}"]
    parsed = email.message_from_bytes(path.read_bytes())
    assert (parsed["To"], parsed["Message-ID"]) == ("secret.person@example.com", queued.message_id)
