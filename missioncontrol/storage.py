"""Static files storage: whitenoise's compressed manifest storage, without source maps.

Source maps are left out of collectstatic (`--ignore "*.map"`: 10 MB of Swagger UI's alone, in
four copies each once hashed and compressed), so references to them are not rewritten either
(the manifest storage would otherwise fail on the missing files). Browsers only ask for maps
with developer tools open, and then get a 404.
"""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


def _without_source_maps(patterns: tuple) -> tuple:
    return tuple(
        (glob, tuple(p for p in entries if "sourceMappingURL" not in str(p)))
        for glob, entries in patterns
    )


class StaticStorage(CompressedManifestStaticFilesStorage):
    patterns = _without_source_maps(CompressedManifestStaticFilesStorage.patterns)
