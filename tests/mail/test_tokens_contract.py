"""The account-token contract: issue with its mail in one transaction, redeem once, die on change."""

from __future__ import annotations

import asyncio

import pytest

from service.errors import EmailTaken
from service.store.mail import AccountToken, MarkVerified, SetEmail, SetPassword
from tests.conftest import START
from tests.mail.conftest import MailStores, a_user, mail_for


def token(user_id: object, hash_: str = "h1", purpose: str = "reset", ttl: float = 1800) -> AccountToken:
    assert not isinstance(user_id, str)
    return AccountToken(
        token_hash=hash_,
        user_id=user_id,  # type: ignore[arg-type]
        purpose=purpose,
        email="ada@example.com",
        created_at=START,
        expires_at=START + ttl,
    )


async def test_issue_stores_the_token_and_its_mail_together(mail: MailStores) -> None:
    """The token is found by hash and purpose, and its mail is in the outbox."""
    user = await a_user(mail.database)
    await mail.tokens.issue_token(token(user.id), [mail_for(kind="password_reset")])
    found = await mail.tokens.find_token("h1", "reset", START + 1)
    assert found is not None
    assert (found.user_id, found.email) == (user.id, "ada@example.com")
    assert await mail.tokens.find_token("h1", "verify", START + 1) is None, "bound to its purpose"
    assert [row.kind for row in await mail.outbox.list_mail("pending", 10)] == ["password_reset"]


async def test_a_failed_enqueue_leaves_no_token(mail: MailStores) -> None:
    """Token and mail commit together: a mail that cannot be written takes the token with it."""
    user = await a_user(mail.database)
    duplicate = mail_for()
    await mail.outbox.enqueue(duplicate)
    with pytest.raises(Exception):  # noqa: B017, PT011 -- the backend's own integrity error
        await mail.tokens.issue_token(token(user.id), [duplicate])
    assert await mail.tokens.find_token("h1", "reset", START) is None


async def test_a_new_token_replaces_the_previous_one_of_its_purpose(mail: MailStores) -> None:
    """Only the newest link of a purpose works."""
    user = await a_user(mail.database)
    await mail.tokens.issue_token(token(user.id, "h1"), [])
    await mail.tokens.issue_token(token(user.id, "h2"), [])
    await mail.tokens.issue_token(token(user.id, "v1", "verify"), [])
    assert await mail.tokens.find_token("h1", "reset", START) is None
    assert await mail.tokens.find_token("h2", "reset", START) is not None
    assert await mail.tokens.find_token("v1", "verify", START) is not None


async def test_redeem_applies_the_change_once_and_kills_the_other_tokens(mail: MailStores) -> None:
    """A password reset: the hash changes, the notice is queued, the token and its siblings die."""
    user = await a_user(mail.database)
    await mail.tokens.issue_token(token(user.id, "v1", "verify"), [])
    await mail.tokens.issue_token(token(user.id, "h1"), [])
    changed = await mail.tokens.redeem_token("h1", "reset", START + 5, SetPassword("new-hash"), [mail_for()])
    assert changed is not None
    assert changed.password_hash == "new-hash"
    assert changed.updated_at == pytest.approx(START + 5)
    assert await mail.tokens.redeem_token("h1", "reset", START + 6, SetPassword("x"), []) is None
    assert await mail.tokens.find_token("v1", "verify", START + 6) is None
    assert len(await mail.outbox.list_mail(None, 10)) == 1


async def test_expired_tokens_cannot_be_redeemed(mail: MailStores) -> None:
    """At its expiry instant a token is dead."""
    user = await a_user(mail.database)
    await mail.tokens.issue_token(token(user.id, ttl=60), [])
    assert await mail.tokens.redeem_token("h1", "reset", START + 60, SetPassword("x"), []) is None
    reread = await mail.database.get_user(user.id)
    assert reread is not None
    assert reread.password_hash == "old-hash"


async def test_racing_redeems_succeed_once(mail: MailStores) -> None:
    """Ten concurrent redeems of one token: exactly one changes the account."""
    user = await a_user(mail.database)
    await mail.tokens.issue_token(token(user.id), [])
    results = await asyncio.gather(
        *(mail.tokens.redeem_token("h1", "reset", START, SetPassword(f"h{i}"), []) for i in range(10))
    )
    assert sum(result is not None for result in results) == 1


async def test_email_change_to_a_taken_address_changes_nothing(mail: MailStores) -> None:
    """The unique index decides: EmailTaken, and token, account and outbox are as before."""
    user = await a_user(mail.database)
    await a_user(mail.database, "bob@example.com")
    await mail.tokens.issue_token(token(user.id, "c1", "email_change"), [])
    with pytest.raises(EmailTaken):
        await mail.tokens.redeem_token(
            "c1", "email_change", START, SetEmail("Bob@example.com", "bob@example.com"), [mail_for()]
        )
    assert await mail.tokens.find_token("c1", "email_change", START) is not None
    assert await mail.outbox.list_mail(None, 10) == []
    reread = await mail.database.get_user(user.id)
    assert reread is not None
    assert reread.email == "ada@example.com"


async def test_verification_of_a_former_address_does_nothing(mail: MailStores) -> None:
    """MarkVerified names the address the link went to; another address is not verified."""
    user = await a_user(mail.database)
    await mail.tokens.issue_token(token(user.id, "v1", "verify"), [])
    assert await mail.tokens.redeem_token("v1", "verify", START, MarkVerified("old@example.com"), []) is None
    await mail.tokens.issue_token(token(user.id, "v2", "verify"), [])
    verified = await mail.tokens.redeem_token("v2", "verify", START, MarkVerified("ada@example.com"), [])
    assert verified is not None


async def test_a_password_change_elsewhere_voids_every_link(mail: MailStores) -> None:
    """set_password_hash (password change, rehash) deletes the account's tokens in the same write."""
    user = await a_user(mail.database)
    await mail.tokens.issue_token(token(user.id), [])
    await mail.database.set_password_hash(user.id, "changed", START + 1)
    assert await mail.tokens.find_token("h1", "reset", START + 2) is None
