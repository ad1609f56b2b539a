"""The web page (``web/``, built by ``npm run build``) served at ``/``.

``GatewaySettings.web_dir`` names the built directory (``web/dist``). Its files
are served as they are (Litestar's static files router, content type by file
name); ``/`` and every other ``GET`` path that is no file and not under
``/api`` or ``/healthz`` answer ``index.html`` (the page routes itself: a
bookmarked ``/bots/x`` still opens the page). A path under ``/api`` that no
route serves keeps the API's JSON 404. With ``web_dir`` empty no page is
served and ``/`` is a JSON 404 as any unknown path.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from litestar import Request, Response, Router
from litestar.exceptions import NotFoundException
from litestar.response import File
from litestar.static_files import create_static_files_router

from tradebus.gateway.errors import http_error_handler

log = logging.getLogger(__name__)

INDEX = "index.html"
API_PREFIXES = ("/api/", "/api", "/healthz")
"""Paths that are never the page: their unknown routes stay JSON 404s."""


def _is_api(path: str) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in API_PREFIXES)


def web_routers(web_dir: str) -> list[Router]:
    """The routers that serve the built page from ``web_dir``: [] when it is empty, or
    (with a warning in the log) when it holds no ``index.html`` (the page is not built)."""
    if not web_dir:
        return []
    root = Path(web_dir).resolve()
    index = root / INDEX
    if not index.is_file():
        log.warning(
            "no web page served: web_dir has no index.html (cd web && npm ci && npm run build)",
            extra={"web_dir": web_dir},
        )
        return []

    def fallback(request: Request[Any, Any, Any], exc: NotFoundException) -> Response[Any]:
        """No such file: the page itself (it routes the path), or the API's JSON 404."""
        if request.method not in ("GET", "HEAD") or _is_api(request.url.path):
            return http_error_handler(request, exc)
        return File(
            path=index, filename=INDEX, content_disposition_type="inline", media_type="text/html"
        )

    return [
        create_static_files_router(
            path="/",
            directories=[root],
            html_mode=True,
            name="web",
            include_in_schema=False,
            exception_handlers={NotFoundException: fallback},
        )
    ]
