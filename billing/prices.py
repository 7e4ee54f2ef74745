"""What a usage record costs: the maintained price table (`genai-prices`), overridden by the
admins' prices for private or local models; an unknown model is never priced by guess.

Token convention (ours, the API's, OpenClaw's and Anthropic's): a record's `input_tokens`
**excludes** cache reads and writes, and `output_tokens` includes reasoning tokens.
`genai-prices` counts `input_tokens` as the total input, cache reads and writes included: the
one conversion between the two is `_table_usage` below.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from importlib.metadata import version
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from missioncontrol.cached import Reloaded

if TYPE_CHECKING:
    from genai_prices import Usage
    from genai_prices.types import ModelInfo, ModelPrice, Provider


@lru_cache(maxsize=1)
def _gp() -> Any:
    """genai-prices, imported when the first record is priced: its table and pydantic are ~30 MB
    that a server nobody has sent usage to yet need not hold (idle memory, bench/startup.py)."""
    from genai_prices import Usage
    from genai_prices.data_snapshot import get_snapshot
    from genai_prices.types import ModelPrice, TieredPrices

    return SimpleNamespace(
        Usage=Usage, get_snapshot=get_snapshot, ModelPrice=ModelPrice, TieredPrices=TieredPrices
    )


TABLE = "genai-prices"
TABLE_VERSION = f"{TABLE} {version('genai-prices')}"
# Costs are stored to the nano-dollar: one token of the cheapest cache read is a few of them.
NANO = Decimal("0.000000001")
MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Tokens:
    input: int = 0  # excludes cache reads and writes
    output: int = 0  # includes reasoning
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0


@dataclass(frozen=True)
class Priced:
    """A record's cost and what it was costed with; `cost` None means unpriced (`reason` says
    why)."""

    cost: Decimal | None
    source: str  # "genai-prices 0.2.3" | "override 4" | "reported" | "no tokens" | ""
    reason: str = ""

    @property
    def priced(self) -> bool:
        return self.cost is not None


@dataclass(frozen=True)
class Override:
    """An admin's price (USD per million tokens) for models matching a pattern, from a date."""

    id: int
    provider: str  # "" matches any provider
    pattern: str  # fnmatch pattern, case-insensitive
    effective_from: date
    input_mtok: Decimal
    output_mtok: Decimal
    cache_read_mtok: Decimal | None
    cache_write_mtok: Decimal | None

    def matches(self, model: str, provider: str, day: date) -> bool:
        if self.effective_from > day:
            return False
        if self.provider and self.provider.lower() != provider.lower():
            return False
        return fnmatch.fnmatchcase(model.lower(), self.pattern.lower())

    def cost(self, tokens: Tokens) -> Decimal:
        # Cache prices not given are the input price: the safe side for a private model.
        read = self.input_mtok if self.cache_read_mtok is None else self.cache_read_mtok
        write = self.input_mtok if self.cache_write_mtok is None else self.cache_write_mtok
        total = (
            tokens.input * self.input_mtok
            + tokens.output * self.output_mtok
            + tokens.cache_read * read
            + tokens.cache_write * write
        )
        return total / MILLION


def split(model: str, provider: str) -> tuple[str, str]:
    """`anthropic/claude-sonnet-4` → (`claude-sonnet-4`, `anthropic`); an explicit provider
    wins over the prefix."""
    model = model.strip()
    if "/" in model:
        prefix, _, rest = model.partition("/")
        if rest:
            return rest, provider.strip() or prefix
    return model, provider.strip()


def _table_usage(tokens: Tokens) -> Usage:
    """Ours → genai-prices' convention: its input_tokens is the total input (cache reads and
    writes are parts of it), and reasoning is a part of the output, as in ours."""
    return _gp().Usage(
        input_tokens=tokens.input + tokens.cache_read + tokens.cache_write,
        cache_read_tokens=tokens.cache_read,
        cache_write_tokens=tokens.cache_write,
        output_tokens=tokens.output,
        output_reasoning_tokens=min(tokens.reasoning, tokens.output),
    )


# Per table price (by identity: the snapshot keeps them): its cost as a linear function of the
# token counts (cost of no tokens, then per million input, output, cache read, cache write,
# reasoning), worked out once from the table itself, or None for tiered prices (then every
# record goes through calc_price). Exact: Decimal arithmetic, and measured equal to calc_price
# for every model of the table, tiered ones too (tests/billing/test_prices.py). ~100 µs → ~5 µs.
_linear: dict[int, tuple[ModelPrice, tuple[Decimal, ...] | None]] = {}


def _rates(model_price: ModelPrice) -> tuple[Decimal, ...] | None:
    cached = _linear.get(id(model_price))
    if cached is not None and cached[0] is model_price:
        return cached[1]
    rates: tuple[Decimal, ...] | None = None
    if not any(isinstance(v, _gp().TieredPrices) for v in model_price.__dict__.values()):
        m = 1_000_000

        def cost(**t: int) -> Decimal:
            return Decimal(model_price.calc_price(_table_usage(Tokens(**t)))["total_price"])

        base = cost()
        output = cost(output=m) - base
        rates = (
            base,
            cost(input=m) - base,
            output,
            cost(cache_read=m) - base,
            cost(cache_write=m) - base,
            cost(output=m, reasoning=m) - base - output,  # reasoning's price beyond output's
        )
    _linear[id(model_price)] = (model_price, rates)
    return rates


# Tiered prices (the tier is chosen by the total input tokens, cache included) are linear again
# within each tier: per table price, the tier starts and one untiered price per tier.
_tiers: dict[int, tuple[ModelPrice, list[int], list[ModelPrice]]] = {}


def _tiered(model_price: ModelPrice) -> tuple[list[int], list[ModelPrice]]:
    cached = _tiers.get(id(model_price))
    if cached is not None and cached[0] is model_price:
        return cached[1], cached[2]
    values = dict(model_price.__dict__)
    starts = sorted(
        {t.start for v in values.values() if isinstance(v, _gp().TieredPrices) for t in v.tiers}
    )
    flat = []
    for k in range(len(starts) + 1):
        total = 0 if k == 0 else starts[k - 1] + 1  # any total input of tier k
        flat.append(
            _gp().ModelPrice(
                **{
                    key: _applicable(v, total) if isinstance(v, _gp().TieredPrices) else v
                    for key, v in values.items()
                }
            )
        )
    _tiers[id(model_price)] = (model_price, starts, flat)
    return starts, flat


def _applicable(price: Any, total_input: int) -> Decimal:
    """genai-prices' rule (calc_unit_price): the highest tier whose start the total exceeds."""
    for tier in reversed(price.tiers):
        if total_input > tier.start:
            return tier.price
    return price.base


def table_cost(model_price: ModelPrice, tokens: Tokens) -> Decimal:
    rates = _rates(model_price)
    if rates is None:
        starts, flat = _tiered(model_price)
        total_input = tokens.input + tokens.cache_read + tokens.cache_write
        rates = _rates(flat[sum(1 for s in starts if total_input > s)])
        if rates is None:  # not expected: a tier's price is itself untiered
            return Decimal(model_price.calc_price(_table_usage(tokens))["total_price"])
    base, i, o, r, w, z = rates
    return (
        base
        + (
            tokens.input * i
            + tokens.output * o
            + tokens.cache_read * r
            + tokens.cache_write * w
            + min(tokens.reasoning, tokens.output) * z
        )
        / MILLION
    )


@lru_cache(maxsize=4096)
def _find(model: str, provider: str) -> tuple[Provider, ModelInfo] | str:
    """The table's entry for a model, or why there is none. A provider the table does not know
    is not guessed from the model's name (a local `gpt-4o` behind a proxy is not OpenAI's)."""
    try:
        return _gp().get_snapshot().find_provider_model(model, None, provider or None, None)
    except LookupError:
        if provider:
            return f"{provider}/{model} is not in the price table"
        return f"{model} is not in the price table"


@lru_cache(maxsize=4096)
def _static(model: str, provider: str) -> ModelPrice | None:
    """The model's one price when the table has no dated or conditional ones for it (most
    models): then no per-record lookup by time is needed."""
    found = _find(model, provider)
    if isinstance(found, str):
        return None
    info = found[1]
    return (
        info.prices
        if isinstance(info.prices, _gp().ModelPrice) and not info.price_variants
        else None
    )


# --- Overrides: loaded from the database, cached per process --------------------------------

# Other processes (the scale-out profile) see an override change within this many seconds;
# this process at once (models.PriceOverride's signals clear the cache).
OVERRIDES_TTL_S = 10.0


def _load_overrides() -> list[Override]:
    from billing.models import PriceOverride

    loaded = [
        Override(
            id=o.pk,
            provider=o.provider,
            pattern=o.model_pattern,
            effective_from=o.effective_from,
            input_mtok=o.input_per_mtok,
            output_mtok=o.output_per_mtok,
            cache_read_mtok=o.cache_read_per_mtok,
            cache_write_mtok=o.cache_write_per_mtok,
        )
        for o in PriceOverride.objects.all()
    ]
    # Newest first, then the most specific pattern (fewest wildcards, longest).
    loaded.sort(
        key=lambda o: (
            o.effective_from,
            -sum(o.pattern.count(c) for c in "*?["),
            len(o.pattern),
            o.id,
        ),
        reverse=True,
    )
    return loaded


_overrides = Reloaded("price overrides", _load_overrides, OVERRIDES_TTL_S)
overrides = _overrides.get
forget_overrides = _overrides.forget


def price(model: str, provider: str, tokens: Tokens, at: datetime) -> Priced:
    """The cost of these tokens of `model` at the price in force at `at`."""
    name, provider = split(model, provider)
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    day = at.astimezone(UTC).date()
    for override in overrides():
        if override.matches(name, provider, day) or (
            name != model and override.matches(model, provider, day)
        ):
            return Priced(
                override.cost(tokens).quantize(NANO, ROUND_HALF_EVEN), f"override {override.id}"
            )
    found = _find(name, provider)
    if isinstance(found, str):
        return Priced(None, "", found)
    try:
        total = table_cost(_static(name, provider) or found[1].get_prices(at), tokens)
    except (ValueError, ArithmeticError) as error:  # a unit the table cannot price
        return Priced(None, "", f"{found[0].id}/{found[1].id}: {error}")
    return Priced(total.quantize(NANO, ROUND_HALF_EVEN), TABLE_VERSION)


# A record costed with what its agent or gateway reported (no price of ours knows its model).
REPORTED = "reported"
NO_TOKENS = "no tokens"


def cost_of(
    model: str, provider: str, tokens: Tokens, at: datetime, reported: Decimal | None
) -> Priced:
    """What a record costs: the price in force (an admin's, then the table's); when neither
    knows the model, the cost its agent or gateway reported with it (marked `reported`, and
    replaced by a price of ours once there is one: `reprice`); a record of no tokens at all
    (an aborted run's) costs nothing. Otherwise unpriced, never guessed."""
    priced = price(model, provider, tokens, at)
    if priced.priced:
        return priced
    if reported is not None:
        return Priced(reported.quantize(NANO, ROUND_HALF_EVEN), REPORTED, priced.reason)
    if not (tokens.input or tokens.output or tokens.cache_read or tokens.cache_write):
        return Priced(Decimal(0), NO_TOKENS)
    return priced


def table_model(model: str, provider: str) -> dict[str, Any] | None:
    """The table's name for a model (to show what a record was priced as)."""
    name, provider = split(model, provider)
    found = _find(name, provider)
    if isinstance(found, str):
        return None
    return {"provider": found[0].id, "model": found[1].id, "name": found[1].name or found[1].id}


def nanos(amount: Decimal | None) -> int:
    return 0 if amount is None else int(amount.quantize(NANO, ROUND_HALF_EVEN) / NANO)


def from_nanos(value: int | None) -> Decimal:
    return (Decimal(value or 0) * NANO).quantize(NANO)
