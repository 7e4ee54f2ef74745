"""`reprice` and `import_usage`: thin, idempotent, dry run by default where they rewrite."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from billing import reports
from billing.actions import UsageItem, record_usage
from billing.models import PriceOverride, UsageRecord, UsageRollup
from missioncontrol.models import AuditEvent
from tests.agents.factories import AgentFactory

pytestmark = pytest.mark.django_db
AT = datetime(2026, 11, 20, 12, tzinfo=UTC)


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def window_cost() -> Decimal:
    f = reports.Filters()
    return reports.totals(
        reports.rows(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), f)
    ).cost


class TestReprice:
    @pytest.fixture
    def stored(self):
        agent = AgentFactory.create(name="ada")
        record_usage(
            [
                UsageItem(agent.pk, "gpt-4o", 1000, 500, AT, provider="openai", client_id="a"),
                UsageItem(agent.pk, "llama-3-local", 1000, 1000, AT, client_id="b"),
            ]
        )
        PriceOverride.objects.create(
            model_pattern="llama-3*",
            input_per_mtok=Decimal(1),
            output_per_mtok=Decimal(3),
            effective_from=date(2026, 1, 1),
        )
        return agent

    def test_dry_run_by_default_writes_nothing(self, stored):
        out = run("reprice")
        assert "Would reprice 1 of 2 records: total $0.007500 → $0.011500" in out
        assert "Dry run" in out
        assert UsageRecord.objects.get(client_id="b").cost_usd is None
        assert window_cost() == Decimal("0.0075")

    def test_for_real_applies_the_override_and_the_rollups_follow(self, stored):
        out = run("reprice", "--for-real")
        assert "Repriced 1 of 2 records" in out
        assert UsageRecord.objects.get(client_id="b").cost_usd == Decimal("0.004")
        assert window_cost() == Decimal("0.0115")
        assert UsageRollup.objects.get(model="llama-3-local").unpriced_records == 0
        assert AuditEvent.objects.filter(verb="usage.repriced").count() == 1
        # Idempotent: a second run changes nothing.
        assert "Repriced 0 of 2 records" in run("reprice", "--for-real")

    def test_model_and_since_narrow_it(self, stored):
        assert "0 of 0 records" in run("reprice", "--since", "2026-11-21")
        assert "0 of 1 records" in run("reprice", "--model", "gpt-4o")

    def test_a_bad_date_is_an_error(self, stored):
        with pytest.raises(CommandError, match="YYYY-MM-DD"):
            run("reprice", "--since", "last week")


class TestImportUsage:
    def test_imports_once_with_the_apis_rules(self, tmp_path):
        path = tmp_path / "usage.jsonl"
        lines = [
            {
                "agent": "ada",
                "id": f"r{i}",
                "model": "gpt-4o",
                "provider": "openai",
                "input_tokens": 1000,
                "output_tokens": 500,
                "occurred_at": "2026-11-20T10:00:00Z",
            }
            for i in range(3)
        ]
        path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
        assert "Imported 3 records (0 already stored)" in run("import_usage", str(path))
        assert "Imported 0 records (3 already stored)" in run("import_usage", str(path))
        assert UsageRecord.objects.count() == 3
        assert window_cost() == Decimal("0.0225")

    def test_one_bad_line_and_nothing_is_written(self, tmp_path):
        path = tmp_path / "usage.jsonl"
        path.write_text(
            json.dumps({"agent": "ada", "model": "gpt-4o", "input_tokens": 1, "output_tokens": 1})
            + "\nnot json\n"
            + json.dumps(
                {"agent": "ada", "model": "gpt-4o", "input_tokens": -5, "output_tokens": 1}
            )
            + "\n"
            + json.dumps({"model": "gpt-4o", "input_tokens": 1, "output_tokens": 1})
            + "\n"
        )
        err = StringIO()
        with pytest.raises(CommandError, match="3 problem"):
            call_command("import_usage", str(path), stdout=StringIO(), stderr=err)
        text = err.getvalue()
        assert "line 2: not JSON." in text
        assert "line 3.input_tokens" in text
        assert "line 4: no agent" in text
        assert not UsageRecord.objects.exists()

    def test_missing_file(self, tmp_path):
        with pytest.raises(CommandError, match="no such file"):
            run("import_usage", str(tmp_path / "nope.jsonl"))


def test_seed_demo_adds_priced_usage_once():
    run("seed_demo", "--open", "5", "--done", "5", "--agents", "3", "--usage", "50", "-v", "0")
    assert UsageRecord.objects.count() == 50
    assert UsageRecord.objects.filter(cost_usd__isnull=False).count() == 50
    assert window_cost() > 0
    # Again: the same record ids, nothing added.
    run("seed_demo", "--open", "0", "--done", "0", "--agents", "3", "--usage", "50", "-v", "0")
    assert UsageRecord.objects.count() == 50
