"""What a live venue's error means for us: retry, reject, halt, or find out.

Every exception a live venue raises (ccxt's hierarchy, ``ccxt.base.errors``)
is translated here, at the boundary, into one of the four kinds of
:class:`~tradebus.engine.venue.VenueError` (the one hierarchy of venue errors):

* ``transient``: the request did not change anything and may be sent again
  after a back-off: rate limits (``RateLimitExceeded``/``DDoSProtection``),
  the exchange unavailable or in maintenance, a network error on a request
  that only reads;
* ``permanent``: the venue refused the request for good; the intent is
  rejected with a machine-readable ``reason`` (``insufficient_balance``,
  ``invalid_order``, ``invalid_price``, ``unknown_symbol``, ``order_not_found``,
  ``venue_rejected``);
* ``configuration``: the account cannot work as configured (authentication,
  permissions, a suspended account, a restricted location): halt the
  account and alert; retrying would only repeat the failure;
* ``unknown_outcome``: a request that changes state (place, cancel) failed
  in a way that does not tell whether the venue acted on it (a timeout, a
  reset connection, an unreadable answer). Never retried blindly: the order
  is marked ``unknown`` and resolved by asking the venue for its client id
  before anything else is sent for the account (DESIGN.md, "Execution").

Backpack's ``MAINTENANCE`` error code arrives as a plain ``ExchangeError``; it
is classified as transient like ccxt's ``OnMaintenance``.

Backpack refuses a request signed outside its receive window with ``401
Request has expired`` (ccxt raises ``AuthenticationError``; the JSON form,
``INVALID_CLIENT_REQUEST``, a plain ``ExchangeError``). That is our clock (or
its offset from the venue's), not our key, and nothing was executed: it is
``transient`` with reason ``request_expired``, and the caller re-syncs the
clock offset before sending it again (:class:`~tradebus.execution.ccxt_venue.CcxtVenue`).

An order priced outside the venue's price band (Backpack: ``INVALID_PRICE``,
"Price is too far from the last active price"; ccxt raises ``InvalidOrder``)
is ``permanent`` with its own reason, ``invalid_price``, so a bot can say why
its far level was refused rather than report a generic ``invalid_order``.

Backpack answers a query for an order it does not know with
``RESOURCE_NOT_FOUND``, which ccxt raises as ``ExchangeNotAvailable``
(a transient class): :func:`is_not_found` recognises it, so a lookup by
client id can tell "not there" from "try again".
"""

from __future__ import annotations

import ccxt

from tradebus.engine.venue import ErrorKind, VenueError

_CONFIGURATION: tuple[type[BaseException], ...] = (
    ccxt.AuthenticationError,  # includes PermissionDenied, AccountSuspended, AccountNotEnabled
    ccxt.RestrictedLocation,
    ccxt.ManualInteractionNeeded,
)
_PERMANENT: tuple[tuple[type[BaseException], str], ...] = (
    (ccxt.InsufficientFunds, "insufficient_balance"),
    (ccxt.OrderNotFound, "order_not_found"),
    (ccxt.InvalidOrder, "invalid_order"),
    (ccxt.BadSymbol, "unknown_symbol"),
    (ccxt.MarketClosed, "market_closed"),
    (ccxt.BadRequest, "invalid_order"),
    (ccxt.NotSupported, "not_supported"),
    (ccxt.ExchangeError, "venue_rejected"),
)
INVALID_PRICE = "invalid_price"
"""The reason of an order refused for its price (outside the venue's band)."""
PRICE_BAND_MARKERS = ("INVALID_PRICE", "too far from the last")
"""How Backpack's price-band refusal reads in ccxt's exception text."""
_NO_EFFECT: tuple[type[BaseException], ...] = (
    ccxt.RateLimitExceeded,  # and DDoSProtection: the request was refused, not executed
    ccxt.DDoSProtection,
    ccxt.OnMaintenance,
    ccxt.InvalidNonce,  # refused before execution (clock or nonce)
)
EXPIRED_MARKERS = ("Request has expired",)
"""Backpack's answer to a request outside its receive window (Backpack API docs,
"Authentication": ``X-Timestamp`` and ``X-Window``, at most 60,000 ms)."""
REQUEST_EXPIRED = "request_expired"
"""The ``reason`` of an expired request (transient: sync the clock, send it again)."""
NOT_FOUND_MARKERS = ("RESOURCE_NOT_FOUND", "not found")
MAINTENANCE_MARKERS = ('"MAINTENANCE"',)
"""Backpack's ``MAINTENANCE`` code arrives as a plain ``ExchangeError``: nothing was done."""


def is_not_found(exc: BaseException) -> bool:
    """The venue says the order does not exist (OrderNotFound, Backpack's RESOURCE_NOT_FOUND)."""
    if isinstance(exc, ccxt.OrderNotFound):
        return True
    return isinstance(exc, ccxt.BaseError) and any(m in str(exc) for m in NOT_FOUND_MARKERS)


def classify(exc: BaseException, *, changes_state: bool) -> VenueError:
    """Translate a venue exception (see the module docstring for the kinds).

    ``changes_state`` is True for requests that may act at the venue (place,
    cancel): a network failure there has an unknown outcome. Exceptions that
    are not ccxt's (a bug, a cancelled task) are not classified here: the
    caller lets them propagate.

    Raises
    ------
    TypeError
        If ``exc`` is not a ccxt exception.
    """
    if not isinstance(exc, ccxt.BaseError):
        raise TypeError(f"not a venue exception: {exc!r}")
    message = str(exc)
    name = type(exc).__name__
    if any(m in message for m in EXPIRED_MARKERS):  # before AuthenticationError: our clock
        return VenueError(kind="transient", reason=REQUEST_EXPIRED, message=message)
    if isinstance(exc, _CONFIGURATION):
        return VenueError(kind="configuration", reason=_snake(name), message=message)
    if isinstance(exc, _NO_EFFECT) or any(m in message for m in MAINTENANCE_MARKERS):
        limited = isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection))
        reason = "rate_limited" if limited else _snake(name)
        return VenueError(kind="transient", reason=reason, message=message, rate_limited=limited)
    if isinstance(exc, (ccxt.NetworkError, ccxt.BadResponse)):  # timeouts, resets, garbage
        kind: ErrorKind = "unknown_outcome" if changes_state else "transient"
        return VenueError(kind=kind, reason=_snake(name), message=message)
    if isinstance(exc, ccxt.InvalidOrder) and any(m in message for m in PRICE_BAND_MARKERS):
        return VenueError(kind="permanent", reason=INVALID_PRICE, message=message)
    for cls, reason in _PERMANENT:
        if isinstance(exc, cls):
            return VenueError(kind="permanent", reason=reason, message=message)
    kind = "unknown_outcome" if changes_state else "transient"
    return VenueError(kind=kind, reason=_snake(name), message=message)


def _snake(name: str) -> str:
    out = [name[0].lower()]
    for ch in name[1:]:
        out.append(f"_{ch.lower()}" if ch.isupper() else ch)
    return "".join(out)
