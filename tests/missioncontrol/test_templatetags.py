"""The shared template filters: numbers, ages, Markdown."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from django.utils import timezone

from missioncontrol.templatetags.mc import ago, markdown, num


def test_numbers_have_thousands_separators():
    assert num(12000) == "12,000"
    assert num(1234567) == "1,234,567"
    assert num(7) == "7"
    assert num(None) == ""
    assert num("n/a") == "n/a"


@time_machine.travel("2026-12-01 12:00:00+00:00", tick=False)
def test_ages_say_just_now_rather_than_zero_minutes():
    now = timezone.now()
    assert ago(now) == "just now"
    assert ago(now - timedelta(seconds=59)) == "just now"
    assert ago(now - timedelta(minutes=5)) == "5 minutes ago"
    assert ago(now - timedelta(hours=2)) == "2 hours ago"
    assert ago(None) == "never"


def test_markdown_task_lists_are_read_only_checkboxes():
    html = markdown("- [ ] write it\n- [x] test it\n- plain")
    assert html.count('type="checkbox"') == 2
    assert html.count('disabled="disabled"') == 2
    assert html.count('checked="checked"') == 1
    assert "[ ]" not in html


def test_markdown_still_has_no_raw_html():
    html = markdown('<input type="checkbox" onclick="x()"> <script>alert(1)</script>')
    assert "<input" not in html
    assert "<script" not in html


def test_due_and_elapsed_read_as_words():
    """(#31.14) 'overdue by 7 minutes', not '7 minutes ago'; '12 seconds', not '0 minutes'."""
    from datetime import timedelta

    from django.utils import timezone

    from missioncontrol.templatetags.mc import due, elapsed

    now = timezone.now()
    assert due(now - timedelta(minutes=7, seconds=5)) == "overdue by 7 minutes"
    assert due(now + timedelta(minutes=5, seconds=5)) == "in 5 minutes"
    assert due(now) == "now"
    assert due(None) == "—"
    assert elapsed(now - timedelta(seconds=12)) in ("12 seconds", "13 seconds")
    assert elapsed(now - timedelta(minutes=3)) == "3 minutes"


def test_one_percent_style_and_numbers_right_aligned_in_every_template():
    """(#31.15) "80%", never "80 %"; a money or number column's cells are right-aligned (`num`)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "templates"
    spaced, loose = [], []
    for path in root.rglob("*.html"):
        text = path.read_text()
        for match in re.finditer(r"(\d|\}\}) %(?!\})", text):
            spaced.append(
                f"{path.relative_to(root)}: …{text[max(0, match.start() - 20) : match.end()]}"
            )
        for match in re.finditer(
            r"<td(?![^>]*\bnum\b)[^>]*>\{\{ [\w.]+\|(money|num) \}\}</td>", text
        ):
            loose.append(f"{path.relative_to(root)}: {match.group(0)[:80]}")
    assert spaced == []
    assert loose == []
