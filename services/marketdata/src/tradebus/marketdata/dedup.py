"""De-duplication of ticks: the same market event never reaches the bus twice.

Seed 000 ("价格更新去重机制"): a reconnect may replay what was already
received, and the REST fallback may report what the stream already said.
Both venues number their events per symbol, strictly increasing (checked on
the recorded Binance captures; Backpack documents its trade id as
"sequential per symbol"):

* trades: Binance ``t``, Backpack ``t`` -> a trade is new iff its id is above
  the highest id published for the symbol. Ids that are not integers (other
  venues) fall back to a window of the last :data:`WINDOW` ids per symbol.
* stream quotes: Binance ``u``, Backpack ``u`` -> new iff above the highest
  stream update id of the symbol. A stream quote equal in every price and
  size to the last quote published when that one came from REST is the
  stream catching up with what REST already reported, and is dropped.
* REST quotes (published only while the stream is stale): new iff they
  differ from the last quote published for the symbol, and, when they carry
  an update id (Backpack ``lastUpdateId``), iff it is above the last REST
  id. REST ids are never compared with stream ids: the venues do not promise
  that the two count the same sequence.

Memory is bounded: a few values per symbol plus at most :data:`WINDOW`
non-numeric trade ids per symbol.
"""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal
from typing import Literal

from tradebus.common.messages import QuoteTick, TradeTick

WINDOW = 4096
"""Non-numeric trade ids remembered per symbol."""

Source = Literal["stream", "rest"]
_Book = tuple[Decimal, Decimal, Decimal, Decimal]


def _book(q: QuoteTick) -> _Book:
    return (q.bid, q.bid_size, q.ask, q.ask_size)


class Deduplicator:
    """Decide whether a tick is new; remembers what it admitted.

    Parameters
    ----------
    window
        Non-numeric trade ids remembered per symbol (oldest forgotten first).
    """

    def __init__(self, window: int = WINDOW) -> None:
        self._window = window
        self._trade_hwm: dict[str, int] = {}
        self._trade_ids: dict[str, OrderedDict[str, None]] = {}
        self._stream_u: dict[str, int] = {}
        self._rest_u: dict[str, int] = {}
        self._last_book: dict[str, tuple[_Book, Source]] = {}

    def admit(self, tick: QuoteTick | TradeTick, source: Source = "stream") -> bool:
        """True if ``tick`` is new (and remember it); False for a duplicate."""
        if isinstance(tick, TradeTick):
            return self._admit_trade(tick)
        return self._admit_quote(tick, source)

    def _admit_trade(self, t: TradeTick) -> bool:
        if t.trade_id.isdigit():
            trade_id = int(t.trade_id)
            if trade_id <= self._trade_hwm.get(t.symbol, -1):
                return False
            self._trade_hwm[t.symbol] = trade_id
            return True
        seen = self._trade_ids.setdefault(t.symbol, OrderedDict())
        if t.trade_id in seen:
            return False
        seen[t.trade_id] = None
        if len(seen) > self._window:
            seen.popitem(last=False)
        return True

    def _admit_quote(self, q: QuoteTick, source: Source) -> bool:
        book = _book(q)
        last = self._last_book.get(q.symbol)
        if source == "stream":
            if q.update_id is not None:
                if q.update_id <= self._stream_u.get(q.symbol, -1):
                    return False
                self._stream_u[q.symbol] = q.update_id
            elif last is not None and last[0] == book:
                return False
            if last is not None and last == (book, "rest"):
                self._last_book[q.symbol] = (book, "stream")
                return False
        else:
            if last is not None and last[0] == book:
                return False
            if q.update_id is not None:
                if q.update_id <= self._rest_u.get(q.symbol, -1):
                    return False
                self._rest_u[q.symbol] = q.update_id
        self._last_book[q.symbol] = (book, source)
        return True
