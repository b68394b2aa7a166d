"""A fixed set of files served from memory with validators: the web page's and the API docs' assets.

Only the names listed are reachable (no path from a request ever reaches the file system). Each file is read
once; responses carry an ETag and `Cache-Control: no-cache`, so browsers revalidate cheaply (304) and see a new
version right after a deploy.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from app.errors import ApiError


class StaticAssets:
    """Files of one directory, by name, with their media types.

    Args:
        directory: where the files are.
        media_types: file name -> media type; the only names served.
        headers: extra headers for every response (e.g. a Content-Security-Policy).
        patches: file name -> (old, new) byte replacements applied once when the file is read (a third-party
            bundle's internet URL pointed at a local file).
    """

    def __init__(
        self,
        directory: Path,
        media_types: Mapping[str, str],
        headers: Mapping[str, str] | None = None,
        patches: Mapping[str, Sequence[tuple[bytes, bytes]]] | None = None,
    ) -> None:
        self.directory = directory
        self.media_types = dict(media_types)
        self.headers = dict(headers or {})
        self.patches = dict(patches or {})
        self._cache: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    def _load(self, name: str) -> tuple[bytes, str]:
        cached = self._cache.get(name)
        if cached is None:
            with self._lock:
                content = (self.directory / name).read_bytes()
                for old, new in self.patches.get(name, ()):
                    content = content.replace(old, new)
                cached = content, '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
                self._cache[name] = cached
        return cached

    def response(self, request: Request, name: str) -> Response:
        """The file `name`, 304 when the client's copy is current, 404 for a name not in the set."""
        media_type = self.media_types.get(name)
        if media_type is None:
            raise ApiError(404, "not_found", f"no file {name!r} here")
        content, etag = self._load(name)
        headers = {**self.headers, "ETag": etag, "Cache-Control": "no-cache"}
        if etag in (tag.strip() for tag in request.headers.get("if-none-match", "").split(",")):
            return Response(status_code=304, headers=headers)
        return Response(content, media_type=media_type, headers=headers)
