"""Prices: the maintained table (genai-prices) computed exactly in our token convention,
overrides winning over it, unknown models flagged and never guessed."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import TieredPrices

from billing import prices
from billing.actions import UsageItem, record_usage
from billing.models import PriceOverride, UsageRecord, UsageRollup
from mcagent.cli import transcript_usage
from tests.agents.factories import AgentFactory

# Pricing reads the admins' overrides.
pytestmark = pytest.mark.django_db

AT = datetime(2026, 11, 20, 12, tzinfo=UTC)


def tokens(**kw: int) -> prices.Tokens:
    return prices.Tokens(**kw)


@pytest.mark.parametrize(
    ("model", "provider", "expected"),
    [
        # $3 / $15 per million: 1,000 × 3 + 500 × 15 = 10,500 µ$.
        ("claude-sonnet-4", "anthropic", Decimal("0.0105")),
        # $2.50 / $10 per million.
        ("gpt-4o", "openai", Decimal("0.0075")),
        ("anthropic/claude-sonnet-4", "", Decimal("0.0105")),
        ("gpt-4o", "", Decimal("0.0075")),
    ],
)
def test_known_prices_are_the_tables_to_the_digit(model, provider, expected):
    priced = prices.price(model, provider, tokens(input=1000, output=500), AT)
    assert priced.cost == expected
    assert priced.source == prices.TABLE_VERSION
    name, prov = prices.split(model, provider)
    table = calc_price(
        Usage(input_tokens=1000, output_tokens=500),
        model_ref=name,
        provider_id=prov or None,
        genai_request_timestamp=AT,
    )
    assert priced.cost == table.total_price


def test_cache_tokens_are_priced_at_their_own_rates():
    # Ours: input excludes the cache; the table's input is the total input.
    priced = prices.price(
        "claude-sonnet-4",
        "anthropic",
        tokens(input=5, cache_read=4000, cache_write=735, output=255),
        AT,
    )
    table = calc_price(
        Usage(input_tokens=4740, cache_read_tokens=4000, cache_write_tokens=735, output_tokens=255),
        model_ref="claude-sonnet-4",
        provider_id="anthropic",
        genai_request_timestamp=AT,
    )
    assert priced.cost == table.total_price
    # $3 input, $0.30 cache read, $3.75 cache write, $15 output per million.
    assert (
        priced.cost
        == (5 * Decimal(3) + 4000 * Decimal("0.3") + 735 * Decimal("3.75") + 255 * Decimal(15))
        / 1_000_000
    )


def test_a_real_claude_code_usage_block_is_priced_in_one_convention():
    """Claude Code's transcript (Anthropic's usage: input without the cache) → mc-agent's
    records → stored cost equal to the table's for the total input."""
    agent = AgentFactory.create()
    records = transcript_usage(Path(__file__).parents[1] / "agents/data/transcript.jsonl", "s1")
    first = records[0]
    assert (first["input_tokens"], first["cache_read_tokens"], first["cache_write_tokens"]) == (
        1200,
        8000,
        500,
    )
    items = [
        UsageItem(
            agent_id=agent.pk,
            model=r["model"],
            input_tokens=r["input_tokens"],
            output_tokens=r["output_tokens"],
            cache_read_tokens=r["cache_read_tokens"],
            cache_write_tokens=r["cache_write_tokens"],
            client_id=r["id"],
            occurred_at=AT,
        )
        for r in records
    ]
    assert record_usage(items) == [True] * len(items)
    stored = UsageRecord.objects.get(client_id=first["id"])
    table = calc_price(
        Usage(
            input_tokens=1200 + 8000 + 500,
            cache_read_tokens=8000,
            cache_write_tokens=500,
            output_tokens=150,
        ),
        model_ref="claude-sonnet-4-5",
        genai_request_timestamp=AT,
    )
    assert stored.cost_usd == table.total_price
    assert stored.price_version == prices.TABLE_VERSION


def test_reasoning_is_part_of_the_output_and_priced_as_the_table_says():
    plain = prices.price("gpt-4o", "openai", tokens(output=1000), AT)
    assert prices.price("gpt-4o", "openai", tokens(output=1000, reasoning=400), AT) == plain
    # A model with its own reasoning price: 600 output + 400 reasoning tokens.
    priced = prices.price(
        "sonar-deep-research", "perplexity", tokens(output=1000, reasoning=400), AT
    )
    table = calc_price(
        Usage(output_tokens=1000, output_reasoning_tokens=400),
        model_ref="sonar-deep-research",
        provider_id="perplexity",
        genai_request_timestamp=AT,
    )
    assert (
        priced.cost
        == table.total_price
        != prices.price("sonar-deep-research", "perplexity", tokens(output=1000), AT).cost
    )


def test_the_fast_path_equals_the_table_for_every_model():
    """The linear rates (billing/prices.py), tier by tier for tiered prices, against
    calc_price for every model of the table, with token counts on both sides of each tier's
    start: not one nano-dollar apart."""
    rng = random.Random(7)
    checked = tiered = 0
    for provider in get_snapshot().providers:
        for model in provider.models:
            model_price = model.get_prices(AT)
            starts = sorted(
                {
                    t.start
                    for v in model_price.__dict__.values()
                    if isinstance(v, TieredPrices)
                    for t in v.tiers
                }
            )
            tiered += bool(starts)
            totals = [rng.randint(0, 200_000)] + [s + d for s in starts for d in (-1, 0, 1, 5000)]
            for total in totals:
                cache_read = rng.randint(0, max(0, total) // 3)
                cache_write = rng.randint(0, max(0, total - cache_read) // 4)
                t = tokens(
                    input=max(0, total - cache_read - cache_write),
                    output=rng.randint(0, 50_000),
                    cache_read=cache_read,
                    cache_write=cache_write,
                )
                assert (
                    prices.table_cost(model_price, t)
                    == model_price.calc_price(prices._table_usage(t))["total_price"]
                ), f"{provider.id}/{model.id} at {total}"
            checked += 1
    assert checked > 2000
    assert tiered > 50


def test_unknown_models_are_not_priced_by_guess():
    unknown = prices.price("my-local-llama", "", tokens(input=10, output=10), AT)
    assert unknown.cost is None
    assert not unknown.priced
    assert "not in the price table" in unknown.reason
    # A model the table knows, behind a provider it does not, is not guessed either.
    proxied = prices.price("gpt-4o", "my-proxy", tokens(input=10, output=10), AT)
    assert proxied.cost is None
    assert "my-proxy/gpt-4o" in proxied.reason


def test_an_override_wins_from_its_day_on():
    before = prices.price("gpt-4o", "openai", tokens(input=1000, output=500), AT)
    override = PriceOverride.objects.create(
        provider="openai",
        model_pattern="gpt-4o*",
        input_per_mtok=Decimal(1),
        output_per_mtok=Decimal(2),
        effective_from=date(2026, 11, 20),
    )
    now = prices.price("gpt-4o", "openai", tokens(input=1000, output=500), AT)
    assert now.cost == Decimal("0.002")
    assert now.source == f"override {override.pk}"
    # Before its day the table still prices the record.
    earlier = prices.price(
        "gpt-4o", "openai", tokens(input=1000, output=500), datetime(2026, 11, 19, tzinfo=UTC)
    )
    assert earlier == before
    # An unpriced local model gets a price; cache tokens default to the input price.
    PriceOverride.objects.create(
        model_pattern="llama-3*",
        input_per_mtok=Decimal("0.5"),
        output_per_mtok=Decimal("0.5"),
        effective_from=date(2026, 1, 1),
    )
    local = prices.price(
        "llama-3.1-8b", "ollama", tokens(input=1000, cache_read=1000, output=2000), AT
    )
    assert local.cost == Decimal("0.002")
    PriceOverride.objects.all().delete()
    assert prices.price("gpt-4o", "openai", tokens(input=1000, output=500), AT) == before


def test_stored_records_carry_cost_version_and_flag():
    agent = AgentFactory.create()
    record_usage(
        [
            UsageItem(
                agent.pk,
                "gpt-4o",
                1000,
                500,
                AT,
                client_id="a",
                provider="openai",
                reported_cost_usd=Decimal("0.0080"),
            ),
            UsageItem(agent.pk, "my-local-llama", 700, 300, AT, client_id="b"),
        ]
    )
    priced = UsageRecord.objects.get(client_id="a")
    assert (priced.cost_usd, priced.price_version, priced.reported_cost_usd) == (
        Decimal("0.0075"),
        prices.TABLE_VERSION,
        Decimal("0.0080"),
    )
    unpriced = UsageRecord.objects.get(client_id="b")
    assert (unpriced.cost_usd, unpriced.price_version) == (None, "")
    rollups = {r.model: r for r in UsageRollup.objects.all()}
    assert rollups["gpt-4o"].cost_nanos == 7_500_000
    assert rollups["gpt-4o"].reported_nanos == 8_000_000
    assert (
        rollups["my-local-llama"].unpriced_records,
        rollups["my-local-llama"].unpriced_tokens,
    ) == (1, 1000)
    assert rollups["my-local-llama"].cost_nanos == 0


@pytest.mark.parametrize(
    "record",
    [
        {
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 1000},
        },
        {"prompt_tokens": 1200, "completion_tokens": 300, "cached_tokens": 1000},
    ],
)
def test_openai_style_counts_are_converted_to_ours(record):
    """OpenAI's prompt_tokens include the cached ones: stored as input 200 + cache read 1,000,
    priced the same as the table prices OpenAI's own usage."""
    from billing.validation import usage_item

    item, errors = usage_item(
        {"model": "gpt-4o", "provider": "openai", **record}, 1, AT, "usage[0]"
    )
    assert errors == {}
    assert item is not None
    assert (item.input_tokens, item.cache_read_tokens, item.output_tokens) == (200, 1000, 300)
    table = calc_price(
        Usage(input_tokens=1200, cache_read_tokens=1000, output_tokens=300),
        model_ref="gpt-4o",
        provider_id="openai",
        genai_request_timestamp=AT,
    )
    assert (
        prices.price("gpt-4o", "openai", tokens(input=200, cache_read=1000, output=300), AT).cost
        == table.total_price
    )


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (
            {"prompt_tokens": 100, "completion_tokens": 1, "cached_tokens": 101},
            "usage[0].cached_tokens",
        ),
        ({"prompt_tokens": -1, "completion_tokens": 1}, "usage[0].prompt_tokens"),
        ({"prompt_tokens": 10, "completion_tokens": "x"}, "usage[0].output_tokens"),
    ],
)
def test_bad_openai_style_counts_are_field_errors(record, field):
    from billing.validation import usage_item

    item, errors = usage_item({"model": "gpt-4o", **record}, 1, AT, "usage[0]")
    assert item is None
    assert field in errors


def test_a_model_no_price_knows_is_costed_as_reported_until_a_price_of_ours_exists():
    """Gateway usage on a model the table does not know showed $0 although every record
    carried the gateway's own cost (#31.5): it is costed with that figure, marked `reported`,
    and counted as spend — and repricing replaces it once an admin adds a price."""
    from billing.actions import reprice
    from missioncontrol.audit import Actor

    agent = AgentFactory.create()
    record_usage(
        [
            UsageItem(
                agent.pk,
                "acme-9",
                700,
                300,
                AT,
                client_id="r",
                provider="acme",
                reported_cost_usd=Decimal("0.0123"),
            ),
            # An aborted run's record: no tokens at all. It costs nothing and leaves no
            # "unpriced" warning behind.
            UsageItem(agent.pk, "gateway-injected", 0, 0, AT, client_id="z", provider=""),
        ]
    )
    reported = UsageRecord.objects.get(client_id="r")
    assert (reported.cost_usd, reported.price_version) == (Decimal("0.0123"), prices.REPORTED)
    empty = UsageRecord.objects.get(client_id="z")
    assert (empty.cost_usd, empty.price_version) == (Decimal(0), prices.NO_TOKENS)
    rollups = {r.model: r for r in UsageRollup.objects.all()}
    assert rollups["acme-9"].cost_nanos == 12_300_000
    assert rollups["acme-9"].unpriced_records == 0
    assert rollups["gateway-injected"].unpriced_records == 0

    PriceOverride.objects.create(
        model_pattern="acme-9",
        input_per_mtok=Decimal(1),
        output_per_mtok=Decimal(2),
        effective_from=date(2026, 1, 1),
    )
    prices.forget_overrides()
    report = reprice(Actor.system("tests"), model="acme-9", for_real=True)
    assert report.changed == 1
    ours = UsageRecord.objects.get(client_id="r")
    assert ours.cost_usd == Decimal("0.0013")  # 700 × $1 + 300 × $2 per million
    assert ours.price_version.startswith("override ")
    assert UsageRollup.objects.get(model="acme-9").cost_nanos == 1_300_000
