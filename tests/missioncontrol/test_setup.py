"""`serve` sets itself up: migrations, the first admin and static files, each a no-op when done."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest

from missioncontrol import setup
from tests.live import ServerProcess


def test_nothing_pending_on_a_migrated_database(db):
    assert setup.pending_migrations() == set()
    assert ("tasks", "0001_initial") in setup.migrations_on_disk()


def test_static_stamp_changes_with_the_sources(tmp_path, settings):
    settings.STATICFILES_DIRS = [tmp_path]
    (tmp_path / "a.css").write_text("a{}")
    first = setup.static_stamp()
    assert setup.static_stamp() == first
    (tmp_path / "b.css").write_text("b{}")
    assert setup.static_stamp() != first


@pytest.mark.slow
def test_a_fresh_data_dir_is_set_up_by_serve_and_a_restart_does_nothing_again(tmp_path: Path):
    # The default database (SQLite in the data dir), whichever profile the suite runs on.
    env = {
        "MC_DATA_DIR": str(tmp_path),
        "MC_ADMIN_USERNAME": "",
        "MC_ADMIN_PASSWORD": "",
        "DATABASE_URL": "",
        "CHANNEL_LAYER_URL": "",
        # As shipped: the compressed static files storage (the tests' own skips compressing).
        "DJANGO_SETTINGS_MODULE": "missioncontrol.settings",
        "MC_GATEWAY_CONNECTORS": "0",
    }
    first = ServerProcess(None, extra_env=env, setup=True).start(timeout=90)
    try:
        # Pages work at once: the manifest was collected before the server listened.
        with urllib.request.urlopen(f"{first.url}/login/", timeout=5) as r:
            assert r.status == 200
            page = r.read().decode()
        with urllib.request.urlopen(f"{first.url}/favicon.ico", timeout=5) as r:
            assert r.status == 200
        # Served by WhiteNoise, which indexed the files once they were all there: the page's
        # stylesheet compressed with Brotli; only the hashed copies are kept.
        css = re.search(r'href="(/static/css/app\.[0-9a-f]+\.css)"', page)
        assert css is not None
        asked = urllib.request.Request(first.url + css.group(1), headers={"Accept-Encoding": "br"})
        with urllib.request.urlopen(asked, timeout=5) as r:
            assert r.status == 200
            assert r.headers["Content-Encoding"] == "br"
        assert not (tmp_path / "static" / "css" / "app.css").exists()
    finally:
        first.stop()
    out = first.output()
    assert "Applying" in out
    assert "Collecting static files" in out
    assert "This password is shown only once" in out
    assert (tmp_path / "mission-control.sqlite3").exists()
    assert (tmp_path / "static" / "staticfiles.json").exists()

    # A restart: nothing to migrate, nothing to collect, the admin left alone.
    (tmp_path / f"serve-{first.port}.log").unlink(missing_ok=True)
    second = ServerProcess(None, extra_env=env, setup=True)
    second.log_path = tmp_path / "second.log"
    second.start(timeout=30)
    second.stop()
    again = second.output()
    assert "Applying" not in again
    assert "Collecting" not in again
    assert "password" not in again
    # How fast that restart is, bench/startup.py measures (docs/benchmarks.md), not a test.


@pytest.mark.slow
def test_missing_static_files_are_collected_not_500(tmp_path: Path):
    env = {
        "MC_DATA_DIR": str(tmp_path),
        "MC_ADMIN_PASSWORD": "pw-123456789",
        "DATABASE_URL": "",
        "CHANNEL_LAYER_URL": "",
    }
    server = ServerProcess(None, extra_env=env, setup=True).start(timeout=90)
    server.stop()
    # Someone deletes the collected files (a new data dir copied without them, say).
    for path in sorted((tmp_path / "static").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    again = ServerProcess(None, extra_env=env, setup=True).start(timeout=90)
    try:
        with urllib.request.urlopen(f"{again.url}/login/", timeout=5) as r:
            assert r.status == 200
    finally:
        again.stop()
    assert "Collecting static files" in again.output()
