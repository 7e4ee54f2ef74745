"""Settings read from the environment; a bad value fails at start naming the variable."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live import ROOT


def run_check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MC_", "DATABASE_URL", "CHANNEL_LAYER_URL"))
    }
    full.update(
        {"MC_DATA_DIR": str(tmp_path / "data"), "DJANGO_SETTINGS_MODULE": "missioncontrol.settings"}
    )
    full.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MC_DEBUG", "maybe"),
        ("MC_PORT", "eighty"),
        ("MC_PORT", "70000"),
        ("MC_TRUSTED_PROXIES", "not-an-ip"),
        ("MC_CSRF_TRUSTED_ORIGINS", "mc.example.com"),
        ("CHANNEL_LAYER_URL", "amqp://x"),
        ("DATABASE_URL", "nosuchdb://x"),
    ],
)
def test_bad_value_stops_start_naming_the_variable(tmp_path, name, value):
    result = run_check(tmp_path, **{name: value})
    assert result.returncode != 0
    assert name in result.stderr


def test_zero_config_works_and_keeps_a_private_secret_key(tmp_path):
    result = run_check(tmp_path)
    assert result.returncode == 0, result.stderr
    key_file = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    first = key_file.read_text()
    run_check(tmp_path)
    assert key_file.read_text() == first


def test_defaults(settings):
    from missioncontrol import settings as real

    assert real.MC_PORT == 3200 or os.environ.get("MC_PORT")
    assert real.ALLOWED_HOSTS == ["localhost", "127.0.0.1", "[::1]"] or os.environ.get(
        "MC_ALLOWED_HOSTS"
    )
    assert real.CHANNEL_LAYERS["default"]["BACKEND"] == (
        "channels_redis.core.RedisChannelLayer"
        if os.environ.get("CHANNEL_LAYER_URL", "").startswith("redis")
        else "channels.layers.InMemoryChannelLayer"
    )


def test_redis_url_selects_channels_redis(tmp_path):
    code = (
        "import django, os; from django.conf import settings; django.setup(); "
        "print(settings.CHANNEL_LAYERS['default']['BACKEND'])"
    )
    env = {
        **os.environ,
        "MC_DATA_DIR": str(tmp_path),
        "CHANNEL_LAYER_URL": "redis://127.0.0.1:6379/0",
        "DJANGO_SETTINGS_MODULE": "missioncontrol.settings",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "channels_redis.core.RedisChannelLayer"
