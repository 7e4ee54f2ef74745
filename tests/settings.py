"""Test overlay on the real settings: a file-backed SQLite test database (WAL works there, and
live servers in other processes can share it) and a fast password hasher."""

from __future__ import annotations

import os

from django.contrib.staticfiles.storage import ManifestStaticFilesStorage

from missioncontrol.settings import *  # noqa: F403
from missioncontrol.settings import DATA_DIR, DATABASES
from missioncontrol.storage import StaticStorage

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Live servers share the test database with the tests' own dispatchers: one that sends webhooks
# would take their deliveries. A test that wants a server to send sets MC_WEBHOOK_DISPATCHER=1.
MC_WEBHOOK_DISPATCHER = os.environ.get("MC_WEBHOOK_DISPATCHER", "") == "1"
# Likewise the notifications' evaluator and sender (MC_NOTIFICATIONS=1 for a server that sends).
MC_NOTIFICATIONS = os.environ.get("MC_NOTIFICATIONS", "") == "1"


class UncompressedStaticStorage(ManifestStaticFilesStorage):
    patterns = StaticStorage.patterns


# Hashed names as in production, without pre-compressing every file (that costs ~25 s per run).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "tests.settings.UncompressedStaticStorage"},
}

if DATABASES["default"]["ENGINE"] == "missioncontrol.db.sqlite":
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-{worker}.sqlite3")}


if CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer":  # noqa: F405
    # Tests that move the clock (time_machine) publish from this process: with channels-redis's
    # default expiries (a day for group members, a minute for messages) a clock a day ahead
    # would drop the live server's membership and messages. Ten years: no test travels so far.
    CHANNEL_LAYERS["default"]["CONFIG"].update(  # type: ignore[attr-defined]  # noqa: F405
        {"group_expiry": 10 * 365 * 86400, "expiry": 10 * 365 * 86400}
    )

# Routes that fail on purpose (tests/fault_urls.py), only for the servers of the tests that ask.
if os.environ.get("MC_TEST_FAULT_ROUTES") == "1":
    ROOT_URLCONF = "tests.fault_urls"
