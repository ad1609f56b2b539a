"""Frames of the generic ccxt.pro feed: ccxt's unified tickers and trades as compact JSON.

The marketdata service's :class:`~tradebus.marketdata.ccxt_source.CcxtSource` turns what ccxt.pro's
``watch_bids_asks`` / ``watch_ticker`` and ``watch_trades_for_symbols`` /
``watch_trades`` return into frames, so the ccxt feed goes through the same
:class:`~tradebus.marketdata.feed.Feed` (de-duplication, health, metrics,
``feed.status``) as the native feeds. Frames (``k`` tags the kind):

* quote ``{"k":"q","s":<native id>,"b":bid,"B":bid size,"a":ask,"A":ask size,
  "t":<ts_event ns>,"u":<update id, optional>}``;
* trade ``{"k":"t","s":<native id>,"p":price,"q":size,"i":<trade id>,
  "side":"buy"|"sell"|null,"t":<ts_event ns>}``; ``side`` is ccxt's trade
  side, the taker's (the aggressor).

Money is a JSON string of the exchange's own text: ccxt's unified numbers
are floats, so each is looked up in the raw ``info`` of the ticker or trade
(known field names first, :data:`INFO_KEYS`, then any field whose value is
that number) and only if absent converted with ``Decimal(str(x))``
(:func:`tradebus.common.money.ccxt_decimal`, the one conversion). Times
are ccxt's millisecond ``timestamp`` in ns (the receive time if it has none).
The update id is the exchange's book sequence where ccxt keeps it in
``info`` (:data:`UPDATE_ID_KEYS`; Backpack and Binance ``u``), else absent:
then :class:`~tradebus.marketdata.dedup.Deduplicator` drops a quote equal to
the previous one.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

import msgspec

from tradebus.common.markets import MarketCatalog
from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.common.money import ccxt_decimal
from tradebus.feeds import backpack, binance
from tradebus.feeds.parsing import FrameKind, ParserBase, Tick

_MS = 1_000_000

INFO_KEYS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    backpack.VENUE: backpack.CCXT_INFO_KEYS,
    binance.VENUE: binance.CCXT_INFO_KEYS,
    "okx": {"bid": ("bidPx",), "bidVolume": ("bidSz",), "ask": ("askPx",),
            "askVolume": ("askSz",), "price": ("px",), "amount": ("sz",)},
    "bybit": {"bid": ("bid1Price",), "bidVolume": ("bid1Size",), "ask": ("ask1Price",),
              "askVolume": ("ask1Size",), "price": ("p",), "amount": ("v",)},
}  # fmt: skip
"""Where an exchange's raw ``info`` holds each unified field (a preference, checked);
the venues parsed natively name their own fields (:mod:`.binance`, :mod:`.backpack`)."""

UPDATE_ID_KEYS: Mapping[str, str] = {
    backpack.VENUE: backpack.CCXT_UPDATE_ID_KEY,
    binance.VENUE: binance.CCXT_UPDATE_ID_KEY,
}
"""The ``info`` field of an exchange's best bid/ask update id (strictly increasing)."""


class CcxtQuote(msgspec.Struct, tag="q", tag_field="k", omit_defaults=True):
    """A quote frame (module docstring)."""

    s: str
    b: Decimal
    B: Decimal
    a: Decimal
    A: Decimal
    t: int
    u: int | None = None


class CcxtTrade(msgspec.Struct, tag="t", tag_field="k"):
    """A trade frame (module docstring)."""

    s: str
    p: Decimal
    q: Decimal
    i: str
    side: Literal["buy", "sell"] | None
    t: int


_frame = msgspec.json.Decoder(CcxtQuote | CcxtTrade)
_encode = msgspec.json.Encoder().encode


def _ts_ns(item: Mapping[str, Any], ts_recv: int) -> int:
    timestamp = item.get("timestamp")
    return int(timestamp) * _MS if isinstance(timestamp, int | float) else ts_recv


def quote_frame(
    exchange_id: str,
    native: str,
    ticker: Mapping[str, Any],
    ts_recv: int,
    *,
    update_id: bool = True,
) -> bytes:
    """The quote frame of a ccxt unified ticker (``watch_bids_asks`` / ``watch_ticker``).

    ``update_id=False`` leaves the update id out (REST answers: their ids,
    if any, are not the stream's).

    Raises
    ------
    ValueError
        If the ticker lacks a price or size of either side.
    """
    keys = INFO_KEYS.get(exchange_id, {})
    info = ticker.get("info")
    prices = {
        f: ccxt_decimal(ticker.get(f), info, keys.get(f, ()))
        for f in ("bid", "bidVolume", "ask", "askVolume")
    }
    key = UPDATE_ID_KEYS.get(exchange_id) if update_id else None
    u = None
    if key is not None and isinstance(info, dict) and str(info.get(key, "")).isdigit():
        u = int(info[key])
    frame = CcxtQuote(
        s=native,
        b=prices["bid"],
        B=prices["bidVolume"],
        a=prices["ask"],
        A=prices["askVolume"],
        t=_ts_ns(ticker, ts_recv),
        u=u,
    )
    return _encode(frame)


def trade_frame(exchange_id: str, native: str, trade: Mapping[str, Any], ts_recv: int) -> bytes:
    """The trade frame of a ccxt unified trade (``watch_trades*``).

    Raises
    ------
    ValueError
        If the trade lacks its price, amount or id.
    """
    keys = INFO_KEYS.get(exchange_id, {})
    info = trade.get("info")
    if trade.get("id") is None:
        raise ValueError("trade without an id")
    side = trade.get("side")
    frame = CcxtTrade(
        s=native,
        p=ccxt_decimal(trade.get("price"), info, keys.get("price", ())),
        q=ccxt_decimal(trade.get("amount"), info, keys.get("amount", ())),
        i=str(trade["id"]),
        side=side if side in ("buy", "sell") else None,
        t=_ts_ns(trade, ts_recv),
    )
    return _encode(frame)


class CcxtParser(ParserBase):
    """Turn ccxt feed frames into ticks of ``venue`` (the ccxt exchange id).

    Parameters
    ----------
    catalog
        Markets; frames of a native id not configured under ``venue`` are
        :attr:`FrameKind.OTHER_SYMBOL`.
    venue
        The ccxt exchange id (``backpack``, ``okx``): venue of ticks and subjects.
    only
        If given, publish only these native ids.
    """

    default_venue = "ccxt"
    frame_name = "ccxt"

    def __init__(self, catalog: MarketCatalog, venue: str, only: set[str] | None = None) -> None:
        super().__init__(catalog, venue, only)

    def parse(self, raw: bytes, ts_recv: int, ts_init: int) -> tuple[FrameKind, Tick | None]:
        """One frame received at ``ts_recv`` (ns); ``ts_init`` stamps the tick.

        Raises
        ------
        msgspec.DecodeError, msgspec.ValidationError
            If the frame is not a quote or trade frame.
        """
        frame = _frame.decode(raw)
        unified = self._unified.get(frame.s)
        if unified is None:
            return (FrameKind.OTHER_SYMBOL, None)
        if isinstance(frame, CcxtQuote):
            return (FrameKind.QUOTE, self._quote(frame, unified, ts_recv, ts_init))
        tick = TradeTick(
            venue=self._venue,
            symbol=frame.s,
            unified_symbol=unified,
            price=frame.p,
            size=frame.q,
            aggressor=frame.side,
            trade_id=frame.i,
            ts_event=frame.t,
            ts_recv=ts_recv,
            ts_init=ts_init,
        )
        return (FrameKind.TRADE, tick)

    def _quote(self, q: CcxtQuote, unified: str, ts_recv: int, ts_init: int) -> QuoteTick:
        return QuoteTick(
            venue=self._venue,
            symbol=q.s,
            unified_symbol=unified,
            bid=q.b,
            bid_size=q.B,
            ask=q.a,
            ask_size=q.A,
            ts_event=q.t,
            ts_recv=ts_recv,
            ts_init=ts_init,
            update_id=q.u,
        )

    def parse_rest_quote(
        self, raw: bytes, symbol: str, ts_recv: int, ts_init: int
    ) -> QuoteTick | None:
        """A quote frame for ``symbol`` made from ccxt REST
        (:class:`~tradebus.marketdata.ccxt_rest.CcxtQuotePoller`).

        Returns None for an unconfigured symbol or a frame of another symbol.

        Raises
        ------
        msgspec.DecodeError, msgspec.ValidationError
            If ``raw`` is not a quote frame.
        """
        frame = _frame.decode(raw)
        unified = self._unified.get(symbol)
        if unified is None or not isinstance(frame, CcxtQuote) or frame.s != symbol:
            return None
        return self._quote(frame, unified, ts_recv, ts_init)
