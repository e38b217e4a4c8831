"""The outbox contract: every backend (SQLite, PostgreSQL) passes each test here."""

from __future__ import annotations

import asyncio

from tests.conftest import START
from tests.mail.conftest import MailStores, mail_for

LEASE = 60.0


async def test_claim_leases_a_due_row_once(mail: MailStores) -> None:
    """A claimed row carries a claim id and one attempt; claiming again inside the lease finds nothing."""
    queued = mail_for()
    await mail.outbox.enqueue(queued)
    [row] = await mail.outbox.claim(START, LEASE, 10)
    assert (row.id, row.message_id, row.attempts, row.state) == (queued.id, queued.message_id, 1, "pending")
    assert row.claim is not None
    assert (row.text_body, row.html_body) == ("plain body", "<p>html body</p>")
    assert await mail.outbox.claim(START + LEASE - 1, LEASE, 10) == []


async def test_a_crash_before_marking_resends_with_the_same_message_id(mail: MailStores) -> None:
    """A worker that sent but never marked loses its lease; the next claim has the same Message-ID."""
    await mail.outbox.enqueue(mail_for())
    [first] = await mail.outbox.claim(START, LEASE, 10)
    [second] = await mail.outbox.claim(START + LEASE + 1, LEASE, 10)
    assert (second.id, second.message_id, second.attempts) == (first.id, first.message_id, 2)
    assert first.claim is not None
    assert not await mail.outbox.mark_sent(first.id, first.claim, START + LEASE + 2), "stale lease"
    assert second.claim is not None
    assert await mail.outbox.mark_sent(second.id, second.claim, START + LEASE + 2)


async def test_sent_rows_lose_their_bodies_and_are_not_claimed(mail: MailStores) -> None:
    """Marking sent clears the bodies (they hold link tokens) and the row is never claimed again."""
    await mail.outbox.enqueue(mail_for())
    [row] = await mail.outbox.claim(START, LEASE, 10)
    assert row.claim is not None
    assert await mail.outbox.mark_sent(row.id, row.claim, START + 1)
    [listed] = await mail.outbox.list_mail("sent", 10)
    assert (listed.state, listed.text_body, listed.html_body, listed.claim) == ("sent", None, None, None)
    assert listed.sent_at == START + 1
    assert await mail.outbox.claim(START + 10 * LEASE, LEASE, 10) == []


async def test_a_failure_waits_until_its_retry_time(mail: MailStores) -> None:
    """A failed row is pending again but not due before retry_at; the error is kept."""
    await mail.outbox.enqueue(mail_for())
    [row] = await mail.outbox.claim(START, LEASE, 10)
    assert row.claim is not None
    assert await mail.outbox.mark_failed(row.id, row.claim, "smtp 451", START + 30)
    assert await mail.outbox.claim(START + 29, LEASE, 10) == []
    [again] = await mail.outbox.claim(START + 30, LEASE, 10)
    assert (again.attempts, again.last_error) == (2, "smtp 451")


async def test_giving_up_makes_the_row_dead(mail: MailStores) -> None:
    """retry_at=None: dead, bodies cleared, listed under dead and counted, never claimed."""
    await mail.outbox.enqueue(mail_for())
    await mail.outbox.enqueue(mail_for("bob@example.com"))
    rows = await mail.outbox.claim(START, LEASE, 1)
    assert len(rows) == 1
    assert rows[0].claim is not None
    assert await mail.outbox.mark_failed(rows[0].id, rows[0].claim, "smtp 550", None)
    [dead] = await mail.outbox.list_mail("dead", 10)
    assert (dead.id, dead.state, dead.last_error, dead.text_body) == (rows[0].id, "dead", "smtp 550", None)
    assert await mail.outbox.count_by_state() == {"dead": 1, "pending": 1}
    assert [r.id for r in await mail.outbox.claim(START + 10_000, LEASE, 10)] != [dead.id]
    assert len(await mail.outbox.list_mail(None, 10)) == 2


async def test_claims_come_oldest_first_and_respect_the_limit(mail: MailStores) -> None:
    """Due rows are claimed in order of due time, at most ``limit`` at once."""
    queued = [mail_for(at=START + i) for i in range(5)]
    for item in reversed(queued):
        await mail.outbox.enqueue(item)
    first = await mail.outbox.claim(START + 10, LEASE, 3)
    second = await mail.outbox.claim(START + 10, LEASE, 3)
    assert [r.id for r in first + second] == [q.id for q in queued]


async def test_two_instances_claiming_at_once_never_share_a_row(
    two_instances: tuple[MailStores, MailStores],
) -> None:
    """Two instances racing over 60 rows, batch by batch: every row is claimed exactly once."""
    one, two = two_instances
    queued = [mail_for(f"user{i}@example.com") for i in range(60)]
    for item in queued:
        await one.outbox.enqueue(item)

    async def drain(stores: MailStores) -> list[str]:
        claimed: list[str] = []
        while batch := await stores.outbox.claim(START, LEASE, 4):
            claimed.extend(str(row.id) for row in batch)
            await asyncio.sleep(0)
        return claimed

    results = await asyncio.gather(drain(one), drain(two), drain(one), drain(two))
    everything = [row_id for result in results for row_id in result]
    assert sorted(everything) == sorted(str(q.id) for q in queued)
