"""Errors of the API: one JSON shape for every refusal, and never a 500 for bad input.

Every error answer is::

    {"error": "<code>", "message": "<for people>", "field": "<path or null>",
     "details": [{"field": "...", "message": "...", "source": "body|query|path|header"}]}

``error`` is a stable machine-readable code (``invalid_request``,
``unauthorized``, ``not_found``, ``conflict``, ``too_many_attempts``...);
``field`` names the first bad field (``params.total_quote``), ``details``
every one. Bad input is 4xx: malformed JSON, wrong types, unknown fields,
missing fields (400), an oversized body (413), an unknown route (404), a
wrong method (405). A 500 means a bug: it is logged with its traceback and
answered without any detail.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

log = logging.getLogger(__name__)

_FIELD_IN_MESSAGE = re.compile(r"field `([^`]+)`")
_PATH_IN_MESSAGE = re.compile(r" - at `\$\.?([^`]*)`")
_STATUS_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_attempts",
    503: "unavailable",
}


class ErrorDetail(msgspec.Struct, frozen=True, kw_only=True):
    """One bad field: its path, what is wrong, and where it was (``body``, ``query``...)."""

    field: str | None
    message: str
    source: str | None = None


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """The body of every error answer (module docstring)."""

    error: str
    message: str
    field: str | None = None
    details: list[ErrorDetail] = []


class ApiError(HTTPException):
    """A refusal a route raises: ``status`` (4xx), ``error`` code, a message for people,
    and the ``field`` it is about (if any)."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        field: str | None = None,
        details: list[ErrorDetail] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.error = error
        self.message = message
        self.field = field
        self.details = details or ([ErrorDetail(field=field, message=message)] if field else [])


def not_found(what: str, name: str) -> ApiError:
    """404 for a resource that does not exist *or is not the caller's* (the same answer)."""
    return ApiError(404, "not_found", f"no {what} {name!r}")


def invalid(field: str, message: str) -> ApiError:
    """400 naming the bad ``field``."""
    return ApiError(400, "invalid_request", f"{field}: {message}", field=field)


def invalid_fields(problems: list[tuple[str, str]]) -> ApiError:
    """400 listing every ``(field, message)`` problem (the first one in ``field``)."""
    details = [ErrorDetail(field=f, message=m, source="body") for f, m in problems]
    message = "; ".join(f"{f}: {m}" for f, m in problems)
    return ApiError(400, "invalid_request", message, field=problems[0][0], details=details)


def _validation_details(exc: ValidationException) -> list[ErrorDetail]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    details: list[ErrorDetail] = []
    for item in extra:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid"))
        field: str | None = item.get("key")
        path = _PATH_IN_MESSAGE.search(message)
        named = _FIELD_IN_MESSAGE.search(message)
        if path and path.group(1):
            field = path.group(1)
            message = _PATH_IN_MESSAGE.sub("", message)
        elif named and field in (None, "data"):
            field = named.group(1)
        details.append(ErrorDetail(field=field, message=message, source=item.get("source")))
    return details


def _respond(body: ErrorBody, status: int, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        content=body, status_code=status, headers=headers, media_type="application/json"
    )


def api_error_handler(request: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    """An :class:`ApiError` as its JSON body."""
    body = ErrorBody(error=exc.error, message=exc.message, field=exc.field, details=exc.details)
    return _respond(body, exc.status_code, exc.headers)


def validation_handler(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """Litestar's request validation (bad JSON, types, unknown or missing fields) as a 400
    naming the fields."""
    details = _validation_details(exc)
    if details:
        message = "; ".join(f"{d.field}: {d.message}" if d.field else d.message for d in details)
        field = details[0].field
    else:
        message, field = str(exc.detail), None
    return _respond(
        ErrorBody(error="invalid_request", message=message, field=field, details=details), 400
    )


def http_error_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Any other HTTP error Litestar raises (404 route, 405, 413, 401...) in our shape."""
    status = exc.status_code
    if status >= 500:
        return internal_error_handler(request, exc)
    error = _STATUS_CODES.get(status, "error")
    headers = dict(exc.headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return _respond(ErrorBody(error=error, message=str(exc.detail)), status, headers)


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A bug: logged with its traceback (the request line only, no body or headers), 500."""
    log.error(
        "internal error",
        exc_info=exc,
        extra={"method": request.method, "path": request.url.path},
    )
    body = ErrorBody(error="internal", message="internal error; it has been logged")
    return _respond(body, HTTP_500_INTERNAL_SERVER_ERROR)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: api_error_handler,
    ValidationException: validation_handler,
    HTTPException: http_error_handler,
    Exception: internal_error_handler,
}
"""Litestar's ``exception_handlers`` of the app (most specific class wins)."""
