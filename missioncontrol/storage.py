"""Static files storage: whitenoise's compressed manifest storage, without source maps.

Source maps are left out of collectstatic (`--ignore "*.map"`: 10 MB of Swagger UI's alone, in
four copies each once hashed and compressed), so references to them are not rewritten either
(the manifest storage would otherwise fail on the missing files). Browsers only ask for maps
with developer tools open, and then get a 404.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from whitenoise.compress import Compressor
from whitenoise.storage import CompressedManifestStaticFilesStorage

# Brotli's best quality (11) costs seconds on a first start: 3 s of CPU for the Django admin's
# and Swagger UI's bundles (the 1.5 MB Swagger bundle alone 1.9 s), rarely loaded; quality 9
# takes a twentieth of that for ~9 % more bytes. What the product's pages load every time (our
# css, js and images, htmx) keeps the best.
VENDOR = {"admin", "ninja"}
_current = threading.local()


def _without_source_maps(patterns: tuple) -> tuple:
    return tuple(
        (glob, tuple(p for p in entries if "sourceMappingURL" not in str(p)))
        for glob, entries in patterns
    )


class QuickerCompressor(Compressor):
    def compress(self, path: str) -> list[str]:
        parts = Path(path).relative_to(settings.STATIC_ROOT).parts
        _current.best = not parts or parts[0] not in VENDOR
        return list(super().compress(path))

    @staticmethod
    def compress_brotli(data: bytes) -> bytes:
        import brotli

        return bytes(brotli.compress(data, quality=11 if getattr(_current, "best", True) else 9))


class StaticStorage(CompressedManifestStaticFilesStorage):
    patterns = _without_source_maps(CompressedManifestStaticFilesStorage.patterns)

    def create_compressor(self, **kwargs: Any) -> Compressor:
        return QuickerCompressor(**kwargs)
