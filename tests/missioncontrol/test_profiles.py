"""The two test profiles: what runs in both, and what once (tests/live.py, once())."""

from __future__ import annotations

import subprocess

import pytest
from django.db import connection

from tests.live import ROOT, once


def _skips(mark: pytest.MarkDecorator) -> bool:
    return bool(mark.args[0])


def test_a_once_test_runs_in_its_profile_only_when_both_run(monkeypatch) -> None:
    here = "sqlite" if connection.vendor == "sqlite" else "postgres"
    there = "postgres" if here == "sqlite" else "sqlite"
    monkeypatch.setenv("MC_TEST_ONCE_IN_ONE", "1")
    assert not _skips(once(here, "layout"))
    assert _skips(once(there, "layout"))
    assert once(there, "layout").kwargs["reason"] == f"layout: once, in the {there} profile"
    # A profile run alone (MC_TEST_PROFILES=sqlite, or pytest by hand) runs every test.
    monkeypatch.delenv("MC_TEST_ONCE_IN_ONE")
    assert not _skips(once(there, "layout"))


@pytest.mark.parametrize(
    ("profiles", "split"), [("sqlite postgres", "1"), ("sqlite", ""), ("postgres", "")]
)
def test_mc_test_splits_once_tests_only_when_it_runs_both_profiles(profiles, split) -> None:
    """The lines of ./mc that decide it, run by bash as ./mc runs them."""
    script = (ROOT / "mc").read_text()
    start = script.index("    # Both profiles: a test that does not depend")
    block = script[start : script.index("    fi\n", start) + len("    fi\n")]
    out = subprocess.run(
        ["bash", "-c", f"profiles='{profiles}'\n{block}echo \"${{MC_TEST_ONCE_IN_ONE:-}}\""],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == split
