"""Static files of the pages and the wall screen, served by Panorama itself (no CDN, no build step).

A feature keeps its files in ``app/<feature>/static/`` (shipped in the wheel as package data);
they are served at ``/static/<feature>/<path>``. Templates link them with ``static("web/panorama.css")``,
which appends a content hash (``?v=1a2b3c4d``): a URL with the current hash is cached for a
year (``immutable``), any other gets ``no-cache`` with an ETag, so a new release is picked up at
once and an unchanged file is never fetched twice. Text assets are gzipped once, in memory.

Files are read once and kept; this module never serves anything outside a feature's static
directory (no ``..``, no absolute paths, no dot files).
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import PurePosixPath

_FEATURE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
COMPRESSIBLE = (".css", ".js", ".svg", ".json", ".txt", ".map")
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    media_type: str
    version: str  # the first hex digits of the content's sha256

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def _split(path: str) -> tuple[str, tuple[str, ...]] | None:
    parts = PurePosixPath(path).parts
    if len(parts) < 2 or not _FEATURE.match(parts[0]) or not all(_PART.match(p) for p in parts[1:]):
        return None
    return parts[0], parts[1:]


@lru_cache(maxsize=256)
def asset(path: str) -> Asset | None:
    """The file at ``<feature>/<path>`` (e.g. ``web/vendor/echarts/echarts.min.js``), or None."""
    split = _split(path)
    if split is None:
        return None
    feature, parts = split
    try:
        node = resources.files(f"app.{feature}").joinpath("static", *parts)
        if not node.is_file():
            return None
        body = node.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        return None
    return _asset(body, parts[-1])


def _asset(body: bytes, name: str) -> Asset:
    suffix = PurePosixPath(name).suffix
    media_type = TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    gzipped = gzip.compress(body, compresslevel=9, mtime=0) if suffix in COMPRESSIBLE else None
    return Asset(body, gzipped, media_type, hashlib.sha256(body).hexdigest()[:12])


# Swagger UI's own files, from the pinned PyPI package ``swagger-ui-py`` (Apache-2.0, its LICENSE
# beside them), for ``/docs``: only the ones the page loads, and the LICENSE.
SWAGGER_UI_PACKAGE = "swagger_ui"
SWAGGER_UI_FILES = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE"})


@lru_cache(maxsize=8)
def swagger_ui_asset(name: str) -> Asset | None:
    """One of ``SWAGGER_UI_FILES`` (served at ``/docs/assets/<name>``), or None."""
    if name not in SWAGGER_UI_FILES:
        return None
    node = resources.files(SWAGGER_UI_PACKAGE).joinpath("static", name)
    if not node.is_file():
        return None
    return _asset(node.read_bytes(), name if "." in name else f"{name}.txt")


def swagger_ui_url(name: str) -> str:
    """``/docs/assets/<name>?v=<hash>``; raises LookupError for a file that is not shipped."""
    found = swagger_ui_asset(name)
    if found is None:
        raise LookupError(f"no Swagger UI file {name!r}")
    return f"/docs/assets/{name}?v={found.version}"


def url(path: str) -> str:
    """``/static/<path>?v=<hash>``; raises LookupError for a file that does not exist (a template bug)."""
    found = asset(path)
    if found is None:
        raise LookupError(f"no static file {path!r}")
    return f"/static/{path}?v={found.version}"
