"""Test overlay on the real settings: a file-backed SQLite test database (WAL works there, and
live servers in other processes can share it) and a fast password hasher."""

from __future__ import annotations

import os

from django.contrib.staticfiles.storage import ManifestStaticFilesStorage

from missioncontrol.settings import *  # noqa: F403
from missioncontrol.settings import DATA_DIR, DATABASES
from missioncontrol.storage import StaticStorage

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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
