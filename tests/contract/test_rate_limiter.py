"""The GCRA contract: the in-process and the Redis limiter decide identically."""

from __future__ import annotations

import asyncio

import pytest

from service.limits import RateLimiter, Rule, parse_rule

T0 = 1_800_000_000.0
RULE = Rule("test", 3, 60)


async def test_burst_then_refuse_then_refill(limiter: RateLimiter) -> None:
    """Three at once are allowed, the fourth waits one interval (20 s), then one more passes."""
    decisions = [await limiter.hit("k", RULE, T0) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert decisions[3].retry_after == pytest.approx(20)
    assert (await limiter.hit("k", RULE, T0 + 19.9)).allowed is False
    assert (await limiter.hit("k", RULE, T0 + 20)).allowed is True
    assert (await limiter.hit("k", RULE, T0 + 20)).allowed is False


async def test_keys_and_rules_are_independent(limiter: RateLimiter) -> None:
    """Spending one key's quota leaves other keys and other rules untouched."""
    for _ in range(3):
        await limiter.hit("a", RULE, T0)
    assert (await limiter.hit("a", RULE, T0)).allowed is False
    assert (await limiter.hit("b", RULE, T0)).allowed is True
    assert (await limiter.hit("a", Rule("other", 3, 60), T0)).allowed is True


async def test_peek_does_not_count(limiter: RateLimiter) -> None:
    """peek reports the decision without spending quota."""
    for _ in range(5):
        assert (await limiter.peek("k", RULE, T0)).allowed is True
    for _ in range(3):
        await limiter.hit("k", RULE, T0)
    peeked = await limiter.peek("k", RULE, T0)
    assert peeked.allowed is False
    assert peeked.retry_after == pytest.approx(20)


async def test_concurrent_hits_never_exceed_the_limit(limiter: RateLimiter) -> None:
    """Fifty simultaneous hits on one key: exactly the limit passes."""
    decisions = await asyncio.gather(*(limiter.hit("race", Rule("race", 10, 60), T0) for _ in range(50)))
    assert sum(d.allowed for d in decisions) == 10


@pytest.mark.parametrize("text", ["30", "0/60", "5/0", "x/60", "-1/60"])
def test_rule_syntax(text: str) -> None:
    """Rules are LIMIT/SECONDS with both positive."""
    with pytest.raises(ValueError):  # noqa: PT011 - parse errors are plain ValueErrors by design
        parse_rule("r", text)
