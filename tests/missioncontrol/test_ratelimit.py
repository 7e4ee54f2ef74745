"""Token buckets: in this process by default, in Redis when one is configured."""

from __future__ import annotations

import pytest

from missioncontrol import ratelimit


def test_a_bucket_allows_its_burst_then_says_how_long_to_wait(settings):
    settings.MC_SHARED_STATE_URL = ""
    bucket = ratelimit.TokenBucket("test-local", rate=2.0, burst=3.0)
    assert [bucket.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = bucket.take("k")
    assert 0 < wait <= 0.5
    assert bucket.take("other") == 0.0  # per key


def test_random_keys_keep_a_bounded_table(settings, monkeypatch):
    """A stranger's random ids (check-ins) each made a bucket, forever (issue #30 §5)."""
    settings.MC_SHARED_STATE_URL = ""
    monkeypatch.setattr(ratelimit, "MAX_KEYS", 100)
    bucket = ratelimit.TokenBucket("test-bounded", rate=1.0, burst=10.0)
    for i in range(1000):
        assert bucket.take(f"random-{i}") == 0.0
    assert len(bucket._local) <= 100
    assert bucket.take("random-999") == 0.0  # a recent key keeps its bucket
    assert bucket._local["random-999"][0] == pytest.approx(8.0, abs=0.1)


async def test_the_async_form_takes_from_the_same_bucket(settings):
    settings.MC_SHARED_STATE_URL = ""
    bucket = ratelimit.TokenBucket("test-async", rate=1.0, burst=1.0)
    assert await bucket.atake("k") == 0.0
    assert bucket.take("k") > 0


def test_an_unreachable_redis_falls_back_to_this_process(settings, caplog):
    settings.MC_SHARED_STATE_URL = "redis://127.0.0.1:1/0"
    bucket = ratelimit.TokenBucket("test-down", rate=1.0, burst=2.0)
    assert [bucket.take("k") for _ in range(2)] == [0.0, 0.0]
    assert bucket.take("k") > 0  # still limited, by this process's bucket
    assert "Redis unreachable" in caplog.text
    assert not ratelimit.shared()  # and Redis is left alone for a while


@pytest.mark.skipif(
    not __import__("django.conf").conf.settings.MC_SHARED_STATE_URL,
    reason="needs the scale-out profile's Redis",
)
async def test_redis_buckets_are_one_budget_for_every_caller():
    bucket = ratelimit.TokenBucket("test-shared", rate=0.5, burst=2.0)
    bucket.reset()
    # Another process's view of the same bucket: nothing local is shared between them.
    other = ratelimit.TokenBucket("test-shared", rate=0.5, burst=2.0)
    assert bucket.take("k") == 0.0
    assert await other.atake("k") == 0.0
    assert bucket.take("k") > 0
    assert await other.atake("k") > 0
