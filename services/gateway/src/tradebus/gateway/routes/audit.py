"""The audit log, for admins: who changed what, when, from where, before and after.

``GET /api/v1/audit`` (admins only: 401 without a valid token, 403 for anyone
else) answers one page of ``audit_log`` (:class:`AuditPage`), newest first,
and the ``next_cursor`` of the page after it (null on the last page). Every
filter is optional and they combine (AND):

* ``since``, ``until``: only events with ``since <= ts < until``; each is
  integer nanoseconds since the epoch or an ISO-8601 time
  (``2026-12-07T01:00:00Z``; without a zone: UTC; a date alone: its midnight);
* ``actor``: exactly this actor (``alice``, ``cli:ops``, ``reconciler``);
* ``target``: targets starting with this (``bot:``, ``bot:alice-``,
  ``account:alice-paper``);
* ``action``: actions starting with this (``bot.``, ``killswitch.engage``);
* ``user``: only rows about this user's resources (their ``user``);
* ``cursor``: the ``next_cursor`` of the page before, with the same filters;
* ``limit``: rows per page, 1 to 1000 (default 100).

A bad value is 400 naming its query parameter (``since``, ``cursor``...).
Rows hold no secret: the publishers record specs, settings and reasons only
(:mod:`tradebus.control.audit`). Events reach the table through the
gateway's audit sink (:mod:`tradebus.gateway.audit_sink`), so a change shows
up here a moment after it was made.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import msgspec
from litestar import Router, get
from litestar.params import Parameter

from tradebus.common.ids import UserId
from tradebus.gateway.auth import SECURED, require_admin
from tradebus.gateway.context import Ctx
from tradebus.gateway.errors import invalid
from tradebus.ledger.audit import DEFAULT_LIMIT, AuditLog, AuditRow
from tradebus.ledger.reports.scope import ALL_USERS, MAX_LIMIT, ReportArgumentError, UserScope

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_US = 1_000
_MAX_FILTER_CHARS = 256
_QUERY_FIELD = {"since_ns": "since", "until_ns": "until"}
"""The query parameter of a :class:`ReportArgumentError` field, where the names differ."""


class AuditPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of the audit log, newest first: ``items`` (at most ``limit``) and the
    ``next_cursor`` of the page after it (None: none yet).

    Each item: ``id`` (write order), ``event_id``, ``ts`` (ns since the epoch),
    ``actor``, ``source`` (``gateway``, ``cli``, ``strategy``, ``execution``,
    ``reconciler``), ``action``, ``target``, ``user`` (owner of the target; None for
    the whole system), ``before`` and ``after`` (JSON objects or None), ``details``.
    """

    items: list[AuditRow]
    next_cursor: str | None


def parse_time(field: str, text: str | None) -> int | None:
    """``text`` as ns since the epoch: an integer (ns) or an ISO-8601 time (module
    docstring); None for None.

    Raises
    ------
    ApiError
        400 naming ``field`` if ``text`` is neither.
    """
    if text is None:
        return None
    value = text.strip()
    digits = value[1:] if value.startswith("-") else value
    if digits.isascii() and digits.isdigit():
        return int(value)  # range: checked by AuditLog.page (bigint)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise invalid(
            field, f"expected nanoseconds since the epoch or an ISO-8601 time, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1) * _NS_PER_US


@get("/", guards=[require_admin], security=SECURED, summary="Read the audit log (admins)")
async def read_audit(
    ctx: Ctx,
    since: Annotated[
        str | None, Parameter(description="from this time on: ns since the epoch, or ISO-8601")
    ] = None,
    until: Annotated[
        str | None, Parameter(description="before this time: ns since the epoch, or ISO-8601")
    ] = None,
    actor: Annotated[
        str | None, Parameter(description="exactly this actor", max_length=_MAX_FILTER_CHARS)
    ] = None,
    target: Annotated[
        str | None,
        Parameter(description="targets starting with this", max_length=_MAX_FILTER_CHARS),
    ] = None,
    action: Annotated[
        str | None,
        Parameter(description="actions starting with this", max_length=_MAX_FILTER_CHARS),
    ] = None,
    user: Annotated[
        str | None, Parameter(description="rows about this user's resources", max_length=64)
    ] = None,
    cursor: Annotated[
        str | None, Parameter(description="next_cursor of the page before", max_length=200)
    ] = None,
    limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> AuditPage:
    """One page of the audit log, newest first (admins; module docstring)."""
    since_ns = parse_time("since", since)
    until_ns = parse_time("until", until)
    scope: UserScope = ALL_USERS if user is None else UserId(user)
    try:
        rows, next_cursor = await AuditLog(ctx.pool).page(
            user=scope,
            since_ns=since_ns,
            until_ns=until_ns,
            action=action,
            target=target,
            actor=actor,
            cursor=cursor,
            limit=limit,
        )
    except ReportArgumentError as exc:
        field = _QUERY_FIELD.get(exc.field, exc.field)
        message = str(exc).removeprefix(f"{exc.field}: ")
        raise invalid(field, message) from None
    return AuditPage(items=rows, next_cursor=next_cursor)


audit_router = Router(path="/api/v1/audit", route_handlers=[read_audit], tags=["audit"])
"""``/api/v1/audit`` (registered in :func:`tradebus.gateway.app.api_routers`)."""
