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
        "print(settings.CHANNEL_LAYERS['default']['BACKEND']); "
        "from channels.layers import get_channel_layer; layer = get_channel_layer(); "
        "pool = layer.create_pool(0); "
        "print(pool.connection_kwargs['socket_timeout'] > layer.brpop_timeout)"
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
    backend, waits_longer = out.stdout.split()
    assert backend == "channels_redis.core.RedisChannelLayer"
    # A read outlasts the layer's blocking pop (redis-py 8 defaults both to 5 s: a loaded
    # machine's receive then failed with "Timeout reading from").
    assert waits_longer == "True"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("https://mc.example.com/", "browsers send 'https://mc.example.com'"),
        ("https://mc.example.com/app", "browsers send 'https://mc.example.com'"),
        ("https://user@mc.example.com:8443", "browsers send 'https://mc.example.com:8443'"),
        ("https://mc.example.com:https", "port that is not a number"),
        ("mc.example.com", "the scheme is part of the origin"),
    ],
)
def test_csrf_origins_that_never_match_a_browser_stop_start_with_the_fix(monkeypatch, value, says):
    """A trailing slash or path in MC_CSRF_TRUSTED_ORIGINS would fail every form POST behind the
    proxy with a bare CSRF page; start-up refuses it and says what to write."""
    from django.core.exceptions import ImproperlyConfigured

    from missioncontrol.config import env_origins

    monkeypatch.setenv("MC_CSRF_TRUSTED_ORIGINS", f"https://ok.example.com,{value}")
    with pytest.raises(ImproperlyConfigured, match="MC_CSRF_TRUSTED_ORIGINS") as refused:
        env_origins("MC_CSRF_TRUSTED_ORIGINS")
    assert says in str(refused.value)


def test_csrf_origins_accepts_origins_with_ports_and_wildcards(monkeypatch):
    monkeypatch.setenv(
        "MC_CSRF_TRUSTED_ORIGINS", "https://mc.example.com:8443, https://*.ts.net,http://[::1]:3200"
    )
    from missioncontrol.config import env_origins

    assert env_origins("MC_CSRF_TRUSTED_ORIGINS") == [
        "https://mc.example.com:8443",
        "https://*.ts.net",
        "http://[::1]:3200",
    ]


def test_check_deploy_names_each_mistake_in_our_variables(settings):
    import ipaddress

    from missioncontrol.checks import deployment

    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["mc.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://mc.example.com"]
    settings.MC_TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
    settings.MC_TLS = True
    settings.MC_HOST = "127.0.0.1"
    assert deployment() == []  # the README's setup: nothing to say

    settings.MC_TLS = False
    settings.MC_HOST = "0.0.0.0"
    settings.MC_TRUSTED_PROXIES = [ipaddress.ip_network("0.0.0.0/0")]
    settings.DEBUG = True
    said = {f.id: f"{f.msg} {f.hint}" for f in deployment()}
    assert set(said) == {"mc.W001", "mc.W003", "mc.W005", "mc.W006"}
    assert "Set MC_TLS=1" in said["mc.W003"]
    settings.CSRF_TRUSTED_ORIGINS = []
    settings.MC_TRUSTED_PROXIES = []
    said = {f.id: f"{f.msg} {f.hint}" for f in deployment()}
    assert "MC_CSRF_TRUSTED_ORIGINS=https://mc.example.com" in said["mc.W004"]
    assert "mc.I001" in said


def test_check_deploy_runs_clean_on_a_proper_setup(tmp_path):
    env = {
        "MC_ALLOWED_HOSTS": "mc.example.com",
        "MC_CSRF_TRUSTED_ORIGINS": "https://mc.example.com",
        "MC_TRUSTED_PROXIES": "127.0.0.1",
        "MC_TLS": "1",
    }
    full = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MC_", "DATABASE_URL", "CHANNEL_LAYER_URL"))
    }
    full.update(
        env, MC_DATA_DIR=str(tmp_path / "data"), DJANGO_SETTINGS_MODULE="missioncontrol.settings"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "no issues" in done.stdout
