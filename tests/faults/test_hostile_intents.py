"""Hostile input: thousands of malformed or hostile intents against the real execution process.

The execution service runs as its own process (``tradebus-execution``, the
entry point compose and ``make demo`` use) on the test's NATS and Postgres.
Intents are published straight onto ``intent.>`` as a person or a bot could:
random bytes, truncated JSON, wrong types, absurd numbers, other users'
accounts, unknown symbols, ~1 MB payloads, reused intent ids, bad subjects,
interleaved with valid orders. Random bytes almost never land inside a JSON
string, so structure-aware cases put them there (:meth:`Generator.structured`):
invalid UTF-8 in values and keys, surrogates as ``\\u`` escapes, raw control,
bidi and zero-width characters, duplicate keys, deep nesting, huge numbers
as text; one of each is in every run. Every message is followed by its JetStream
stream sequence to what became of it:

* a valid one is an order row (``orders.stream_seq``) and an ``OrderAccepted``;
* a bad one is a ``rejected_intents`` row (keyed by stream sequence) or a
  venue-rejected order row, with the machine-readable reason expected, and an
  ``OrderRejected`` on ``exec.evt.<user>.<source>`` whenever the subject names
  a user (each message has its own source, so events map one to one);
* the process never exits, and its resident memory stays flat.

The generator is a seeded :class:`random.Random`: the seed is printed, and
``HOSTILE_SEED=<seed>`` replays a run. ``HOSTILE_COUNT`` changes the number
of intents of the main round (default 10,000).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import asyncpg
import nats
import nats.errors
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from tests.support.intents import intents_settled
from tests.support.services import consumer_exists, eventually
from tradebus.cli.processes import entry_point
from tradebus.common import subjects
from tradebus.common.bus import ensure_streams
from tradebus.common.codec import decode_event
from tradebus.common.messages import OrderAccepted, OrderEvent, OrderRejected
from tradebus.common.publish_acks import PublishAcks

MAX_PAYLOAD = 1024 * 1024
"""nats-server's default ``max_payload`` (1 MiB)."""
COUNT = int(os.environ.get("HOSTILE_COUNT", "10000"))
WARMUP = 1500
RSS_MARGIN_KB = 30 * 1024
WINDOW = 512
"""Asynchronous publishes in flight at once."""

ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "100000000", BTC: "1000"}}
  - {id: bob-paper, user: bob, balances: {USDT: "100000000", BTC: "1000"}}
"""
OWNER = {"alice-paper": "alice", "bob-paper": "bob"}

DOOR_REASONS = {"bad_subject", "decode_error", "invalid_intent", "unknown_account", "not_owner"}
"""Refused before the ledger is consulted: the same reason whatever came before."""


@dataclass
class Sent:
    """One published message and what must become of it."""

    kind: str
    subject: str
    payload: bytes
    expect: str  # "accept", "reject", "stored_duplicate" (dropped by the stream)
    reasons: frozenset[str] = frozenset()
    user: str | None = None  # the subject's user, if the subject is well formed
    source: str | None = None
    intent_id: str | None = None  # the (decodable, storable) intent id
    fields: tuple | None = None  # the order fields of a PlaceOrder that reaches the engine
    msg_id: str | None = None
    stream: str | None = None  # where JetStream stored it (INTENTS_<user>)
    seq: int | None = None
    dropped: bool = False  # the stream dropped it (Nats-Msg-Id seen) or refused it
    outcome: str = ""
    reason: str = ""
    event_expected: bool = True


@dataclass
class Generator:
    """Makes hostile and valid intents from one seeded :class:`random.Random`."""

    rng: random.Random
    n: int = 0
    placed: list[Sent] = field(default_factory=list)  # valid places, for reused ids
    refused_ids: list[Sent] = field(default_factory=list)  # refused with an id

    def _next(self) -> int:
        self.n += 1
        return self.n

    def _source(self) -> str:
        return f"f{self._next()}"

    def _place(self, **over: object) -> dict:
        side = self.rng.choice(["buy", "sell"])
        price = "60000.00" if side == "buy" else "70000.00"
        body: dict[str, object] = {
            "type": "PlaceOrder",
            "intent_id": f"fz-{self._next()}",
            "account": "alice-paper",
            "symbol": "BTCUSDT",
            "side": side,
            "qty": self.rng.choice(["0.001", "0.00100", "0.002", "0.0005"]),
            "price": price,
        }
        body.update(over)
        return body

    def _sent(
        self, kind: str, user: str, body: dict | bytes, reasons: set[str] | None = None, **kw
    ) -> Sent:
        source = self._source()
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        intent_id = body.get("intent_id") if isinstance(body, dict) else None
        fields = None
        if isinstance(body, dict) and body.get("type") == "PlaceOrder":
            fields = tuple(str(body.get(k)) for k in ("account", "symbol", "side", "price", "qty"))
        return Sent(
            kind=kind,
            subject=f"intent.{user}.{source}",
            payload=payload,
            expect="reject" if reasons else "accept",
            reasons=frozenset(reasons or ()),
            user=user,
            source=source,
            intent_id=intent_id if isinstance(intent_id, str) else None,
            fields=fields,
            **kw,
        )

    # ---------------------------------------------------------------- valid
    def valid(self) -> Sent:
        user = self.rng.choice(["alice", "bob"])
        body = self._place(account=f"{user}-paper")
        sent = self._sent("valid", user, body)
        self.placed.append(sent)
        return sent

    def valid_padded(self, size: int) -> Sent:
        """A valid order padded with an unknown field to ``size`` bytes: over its user's
        stream's message size, so never stored (its id is not reused as a placed one)."""
        body = self._place()
        base = len(json.dumps({**body, "pad": ""}).encode())
        body["pad"] = "p" * (size - base)
        sent = self._sent("valid_1mb", "alice", body)
        assert len(sent.payload) == size
        return sent

    # ------------------------------------------------------------------ bad
    def random_bytes(self) -> Sent:
        raw = self.rng.randbytes(self.rng.randint(0, 300))
        return self._sent("random_bytes", "alice", raw, {"decode_error"})

    def truncated(self) -> Sent:
        raw = json.dumps(self._place()).encode()
        return self._sent(
            "truncated_json", "alice", raw[: self.rng.randint(0, len(raw) - 1)], {"decode_error"}
        )

    def wrong_type(self) -> Sent:
        key, value = self.rng.choice(
            [
                ("qty", [1]),
                ("qty", {"v": 1}),
                ("qty", True),
                ("price", []),
                ("side", "hold"),
                ("side", 5),
                ("intent_id", 7),
                ("account", None),
                ("type", "Launch"),
                ("type", None),
                ("order_type", "stop"),
                ("ts_init", "soon"),
                ("trigger_ts", 1.5),
                ("clamp_to_free", "yes"),
                ("qty", None),
            ]
        )
        body = self._place(**{key: value})
        if self.rng.random() < 0.3:
            del body["symbol"]  # a missing required field
        return self._sent(f"wrong_type:{key}", "alice", body, {"decode_error"})

    def bad_number(self) -> Sent:
        which = self.rng.choice(["qty", "price"])
        value = self.rng.choice(
            [
                "-1",
                "0",
                "-0",
                "NaN",
                "-NaN",
                "sNaN",
                "Infinity",
                "-Infinity",
                "1e400",
                "1E+15",
                "123456789012345678901234567890",
                "-0.001",
                "0E-30",
            ]
        )
        raw = json.dumps(self._place(**{which: value})).encode()
        if self.rng.random() < 0.3 and value in ("1e400", "-1", "0"):  # as a JSON number
            raw = raw.replace(f'"{value}"'.encode(), value.encode())
        reason = "invalid_quantity" if which == "qty" else "invalid_price"
        return self._sent(f"bad_{which}", "alice", raw, {reason, "invalid_intent"})

    def off_grid(self) -> Sent:
        body, reason = self.rng.choice(
            [
                (self._place(qty="0.000001"), "invalid_precision"),
                (self._place(price="60000.001"), "invalid_precision"),
                (self._place(qty="0.00001"), "below_min_notional"),
                (self._place(side="buy", price="60000.00", qty="9000"), "insufficient_balance"),
                (self._place(side="sell", price="70000.00", qty="9000"), "insufficient_balance"),
                (self._place(price=None), "invalid_price"),
            ]
        )
        return self._sent(f"refused:{reason}", "alice", body, {reason})

    def unknown_account(self) -> Sent:
        account = self.rng.choice(
            ["nobody", "alice-live", "ALICE-PAPER", "alice-paper ", "x" * 200]
        )
        return self._sent(
            "unknown_account", "alice", self._place(account=account), {"unknown_account"}
        )

    def not_owner(self) -> Sent:
        user = self.rng.choice(["alice", "mallory"])
        body = self._place(account="bob-paper")  # alice (or a stranger) naming bob's account
        return self._sent("not_owner", user, body, {"not_owner"})

    def unknown_symbol(self) -> Sent:
        symbol = self.rng.choice(["NOPE", "btcusdt", "BTC/USDT", "BTCUSDT ", "ΒTCUSDT", "DOGEFOO"])
        return self._sent("unknown_symbol", "alice", self._place(symbol=symbol), {"unknown_symbol"})

    def bad_text(self) -> Sent:
        key = self.rng.choice(["intent_id", "symbol", "account"])
        value = self.rng.choice(
            ["a\x00b", "", "line\nbreak", "\x7f", "\x1b[31mred", "y" * self.rng.randint(201, 5000)]
        )
        return self._sent(
            f"bad_text:{key}", "alice", self._place(**{key: value}), {"invalid_intent"}
        )

    # ------------------------------------------------------- structure-aware
    def _raw(self, body: dict, **raw: bytes) -> bytes:
        """``body`` as JSON, the values of ``raw``'s keys replaced by raw JSON text (bytes)."""
        payload = json.dumps({**body, **{k: f"@{k}@" for k in raw}}).encode()
        for key, value in raw.items():
            payload = payload.replace(f'"@{key}@"'.encode(), value, 1)
        return payload

    def _shaped(
        self,
        kind: str,
        payload: bytes,
        reasons: set[str] | None,
        intent_id: str | None = None,
        fields: tuple | None = None,
        user: str = "alice",
    ) -> Sent:
        """A structure-aware case: ``intent_id`` only where execution keeps a clean one."""
        sent = self._sent(f"shaped:{kind}", user, payload, reasons)
        sent.intent_id, sent.fields = intent_id, fields
        if not reasons:
            self.placed.append(sent)
        return sent

    def _bad_utf8(self, where: str) -> Sent:
        bad = self.rng.choice(
            [b"\xff", b"\x80", b"\xc0\x80", b"\xe2\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]
        )
        body = self._place()
        if where == "key":
            payload = json.dumps(body).encode().replace(b'"account"', b'"acc' + bad + b'ount"')
        else:
            payload = self._raw(body, **{where: b'"x' + bad + b'y"'})
        return self._shaped(f"utf8:{where}", payload, {"decode_error"})

    def _surrogate(self, where: str) -> Sent:
        escape = self.rng.choice([b"\\ud800", b"\\udfff", b"\\ud800A", b"\\udc00\\ud800"])
        payload = self._raw(self._place(), **{where: b'"x' + escape + b'"'})
        return self._shaped(f"surrogate:{where}", payload, {"decode_error"})

    def _surrogate_pair(self, where: str) -> Sent:
        """An emoji as an escaped surrogate pair: valid JSON, a printable character."""
        body = self._place()
        value = body[where] + "\U0001f600"
        payload = self._raw(body, **{where: f'"{body[where]}\\ud83d\\ude00"'.encode()})
        if where == "intent_id":
            fields = tuple(str(body[k]) for k in ("account", "symbol", "side", "price", "qty"))
            return self._shaped("surrogate_pair:intent_id", payload, None, value, fields)
        reason = {"account": "unknown_account", "symbol": "unknown_symbol"}[where]
        return self._shaped(f"surrogate_pair:{where}", payload, {reason}, body["intent_id"])

    def _invisible(self, where: str) -> Sent:
        """A control, bidi, zero-width or other invisible character, raw or escaped."""
        ch = self.rng.choice(
            "\x7f\x85\x9b\u202e\u202d\u2066\u2069\u200b\u200d\u2060\ufeff\u061c\u2028\u2029"
            "\U000e0041\ufe0f\ue000\ufffe\u0378\x00\x1b"
        )
        if where == "target_intent_id":
            body = {"type": "CancelOrder", "intent_id": f"fz-{self._next()}"}
            body |= {"account": "alice-paper", where: f"fz-{self.n - 1}"}
        else:
            body = self._place()
        lookalike = body[where][:3] + ch + body[where][3:]
        payload = json.dumps({**body, where: lookalike}, ensure_ascii=self.rng.random() < 0.5)
        if where == "side":
            return self._shaped("invisible:side", payload.encode(), {"decode_error"})
        kept = None if where == "intent_id" else body["intent_id"]
        return self._shaped(f"invisible:{where}", payload.encode(), {"invalid_intent"}, kept)

    def _raw_control(self, where: str) -> Sent:
        """A raw control byte inside a string: JSON allows none below 0x20."""
        ch = self.rng.choice([b"\x00", b"\x01", b"\n", b"\t", b"\x1b", b"\x1f"])
        payload = self._raw(self._place(), **{where: b'"x' + ch + b'y"'})
        return self._shaped(f"raw_control:{where}", payload, {"decode_error"})

    def _duplicate_key(self, which: str) -> Sent:
        """Two keys of one name: msgspec (like json.loads) keeps the last, and the owner
        check is made on that account."""
        last, first, reasons = {
            "own_last": ("alice-paper", b'"account": "bob-paper"', None),
            "foreign_last": ("bob-paper", b'"account": "alice-paper"', {"not_owner"}),
            "intent_id": ("alice-paper", b'"intent_id": "fz-\\u202e-shadow"', None),
            "type": ("alice-paper", b'"type": "CancelAll"', {"decode_error"}),
        }[which]
        body = self._place(account=last)
        payload = json.dumps(body).encode().replace(b"{", b"{" + first + b", ", 1)
        assert json.loads(payload)["account"] == last
        if which == "type":
            return self._shaped("dup_key:type", payload, reasons)
        fields = tuple(str(body[k]) for k in ("account", "symbol", "side", "price", "qty"))
        return self._shaped(f"dup_key:{which}", payload, reasons, body["intent_id"], fields)

    def _nested(self, how: str) -> Sent:
        depth = self.rng.randint(2_000, 10_000)
        arrays, objects = b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth
        payload = {
            "objects": objects,
            "arrays": arrays,
            "arrays_in_a_field": self._raw(self._place(), note=arrays),
            "objects_in_a_field": self._raw(self._place(), note=objects),
            "arrays_as_qty": self._raw(self._place(), qty=arrays),
            "unclosed": b'{"type":"PlaceOrder","note":' + b'{"a":' * depth,
        }[how]
        return self._shaped(f"nested:{how}", payload, {"decode_error"})

    def _huge_number(self, which: str) -> Sent:
        """A number as text no market trades: refused by the order checks or at the door."""
        digits = b"1" + b"0" * self.rng.randint(400, 4000)
        field, text, reasons = {
            "qty_e999999": ("qty", b'"1e999999"', {"invalid_quantity"}),
            "qty_e999999_number": ("qty", b"1e999999", {"invalid_quantity"}),
            "qty_digits": ("qty", b'"' + digits + b'"', {"invalid_quantity"}),
            "qty_digits_number": ("qty", digits, {"invalid_quantity"}),
            "qty_tiny": ("qty", b'"1e-999999"', {"invalid_precision", "invalid_quantity"}),
            "qty_nan": ("qty", b'"NaN"', {"invalid_quantity"}),
            "qty_minus_zero": ("qty", b'"-0"', {"invalid_quantity"}),
            "price_e999999": ("price", b'"1e999999"', {"invalid_price"}),
            "ts_init_digits": ("ts_init", digits, {"invalid_intent"}),
            "ts_init_5000_digits": ("ts_init", b"1" + b"0" * 5000, {"decode_error"}),
            "trigger_ts_negative": ("trigger_ts", b"-" + b"9" * 30, {"invalid_intent"}),
        }[which]
        if field in ("qty", "price"):
            reasons = reasons | {"invalid_intent"}  # a value the ledger or venue cannot take
        payload = self._raw(self._place(), **{field: text})
        return self._shaped(f"huge_number:{which}", payload, reasons)

    STRUCTURED: ClassVar[list[tuple[str, str]]] = [
        *(("_bad_utf8", w) for w in ["intent_id", "account", "symbol", "side", "type", "key"]),
        ("_bad_utf8", "note"),
        *(("_surrogate", w) for w in ["intent_id", "account", "symbol", "side"]),
        *(("_surrogate_pair", w) for w in ["intent_id", "account", "symbol"]),
        *(("_invisible", w) for w in ["intent_id", "account", "symbol", "target_intent_id"]),
        ("_invisible", "side"),
        *(("_raw_control", w) for w in ["intent_id", "account", "symbol", "side"]),
        *(("_duplicate_key", w) for w in ["own_last", "foreign_last", "intent_id", "type"]),
        *(
            ("_nested", w)
            for w in [
                "objects",
                "arrays",
                "arrays_in_a_field",
                "objects_in_a_field",
                "arrays_as_qty",
                "unclosed",
            ]
        ),
        *(
            ("_huge_number", w)
            for w in [
                "qty_e999999",
                "qty_e999999_number",
                "qty_digits",
                "qty_digits_number",
                "qty_tiny",
                "qty_nan",
                "qty_minus_zero",
                "price_e999999",
                "ts_init_digits",
                "ts_init_5000_digits",
                "trigger_ts_negative",
            ]
        ),
    ]
    """Every structure-aware case: (method, argument)."""

    def structured(self) -> Sent:
        """One random structure-aware case (:attr:`STRUCTURED`)."""
        method, arg = self.rng.choice(self.STRUCTURED)
        return getattr(self, method)(arg)

    def every_structured(self) -> list[Sent]:
        """One of each structure-aware case."""
        return [getattr(self, method)(arg) for method, arg in self.STRUCTURED]

    def huge(self) -> Sent:
        """~1 MB, just under ``max_payload``: junk, a giant id, a giant symbol, deep nesting."""
        size = MAX_PAYLOAD - self.rng.randint(200, 2000)
        what = self.rng.choice(["junk", "intent_id", "symbol", "nested"])
        if what == "junk":
            raw = self.rng.randbytes(size)
            return self._sent("1mb:junk", "alice", raw, {"decode_error"})
        if what == "nested":
            depth = size // 2
            return self._sent("1mb:nested", "alice", b"[" * depth + b"]" * depth, {"decode_error"})
        body = self._place()
        body[what] = ""
        body[what] = "z" * (size - len(json.dumps(body).encode()))
        return self._sent(f"1mb:{what}", "alice", body, {"invalid_intent"})

    def duplicate_id(self) -> Sent | None:
        """An id already placed, with different fields (or the same: answered, not placed)."""
        if not self.placed:
            return None
        first = self.rng.choice(self.placed)
        body = json.loads(first.payload)
        body.pop("pad", None)
        changed = self.rng.random() < 0.8
        if changed:
            key, value = self.rng.choice(
                [
                    ("price", "59000.00" if body["side"] == "buy" else "71000.00"),
                    ("symbol", "ETHUSDT"),
                ]
            )
            body[key] = value
            if key == "symbol":
                body["qty"], body["price"] = (
                    "0.01",
                    "3000.00" if body["side"] == "buy" else "4000.00",
                )
        assert first.user is not None
        # reasons filled in by replay(); the expectation depends on what came first
        return self._sent("duplicate_id" if changed else "repeat_same", first.user, body)

    def reuse_refused_id(self) -> Sent | None:
        """A valid order reusing the id of an earlier refused one: refused the same way."""
        if not self.refused_ids:
            return None
        first = self.rng.choice(self.refused_ids)
        if f"{first.user}-paper" not in OWNER:
            return None  # a stranger has no account to reuse it on
        try:
            named = json.loads(first.payload).get("account")
        except ValueError:
            return None
        if named != f"{first.user}-paper":
            # execution orders a user's intents per account: an id refused on another
            # account (or none) is not ordered against this one
            return None
        assert first.user is not None and first.intent_id is not None
        body = self._place(intent_id=first.intent_id, account=f"{first.user}-paper")
        return self._sent("reuse_refused_id", first.user, body)

    def bad_subject(self) -> Sent:
        subject = self.rng.choice(
            [
                "intent.alice",
                "intent.alice.x.y",
                "intent.al$ce.manual",
                "intent.alice.m@nual",
                "intent.ålice.manual",
                "intent.alice.",
                "intent..manual",
                "intent.alice.*",
                "intent.alice.>",
                f"intent.{'u' * 65}.manual",
                "intent.alice.manual\x7f",
            ]
        )
        body = json.dumps(self._place()).encode()
        return Sent(
            kind=f"bad_subject:{subject[:24]}",
            subject=subject,
            payload=body,
            expect="reject",
            reasons=frozenset({"bad_subject"}),
            event_expected=False,
        )

    def any(self) -> Sent:
        """A random message: about one in five valid, the rest hostile."""
        roll = self.rng.random()
        if roll < 0.2:
            return self.valid()
        makers: list[Callable[[], Sent | None]] = [
            self.random_bytes, self.truncated, self.wrong_type, self.wrong_type, self.bad_number,
            self.bad_number, self.off_grid, self.unknown_account, self.not_owner,
            self.unknown_symbol, self.bad_text, self.duplicate_id, self.reuse_refused_id,
            self.bad_subject, self.structured, self.structured,
        ]  # fmt: skip
        while True:
            sent = self.rng.choice(makers)()
            if sent is not None:
                keyed = sent.reasons and not sent.reasons & UNKEYED
                if sent.intent_id and sent.user and keyed and sent.kind != "bad_text:intent_id":
                    self.refused_ids.append(sent)
                return sent


def batch(gen: Generator, count: int, huge: int) -> list[Sent]:
    """``count`` messages: ``huge`` of them ~1 MB (a few valid), the rest from :meth:`any`."""
    out = [gen.any() for _ in range(count - huge)]
    for i in range(huge):
        big = gen.valid_padded(MAX_PAYLOAD - 100) if i % 4 == 0 else gen.huge()
        out.insert(gen.rng.randrange(len(out) + 1), big)
    return out


UNKEYED = {"bad_subject", "decode_error"}
"""Refusals recorded without an intent id (a later intent with that id is not refused by them)."""


def replay(sent: list[Sent]) -> None:
    """Fill in the outcome of every stored message, in stream order, as execution must decide.

    Door refusals do not depend on history; an admitted place reusing a
    ``(user, intent_id)`` is answered from the earlier order (same fields:
    re-answered, no new row; other fields: ``duplicate_intent_id``) or
    refused as the earlier refusal was.
    """
    orders: dict[tuple[str, str], tuple | None] = {}
    refusals: dict[tuple[str, str], str] = {}
    rejected_events: set[tuple[str, str]] = set()
    # each user's stream in its order (intent ids are per user: users do not interact)
    for s in sorted((s for s in sent if not s.dropped), key=lambda s: (s.stream, s.seq or 0)):
        key = (s.user or "", s.intent_id or "")
        door = s.reasons & DOOR_REASONS
        if s.expect == "reject" and (door == s.reasons or s.intent_id is None or s.user is None):
            s.outcome = "rejected"
        elif key in orders:
            if orders[key] == s.fields and s.kind in ("repeat_same", "valid", "valid_1mb"):
                s.outcome, s.event_expected = "answered", False
            else:
                s.outcome, s.reasons = "rejected", frozenset({"duplicate_intent_id"})
        elif key in refusals:
            s.outcome, s.reasons = "rejected", frozenset({refusals[key]})
        elif s.expect == "reject":
            s.outcome = "rejected"
        else:
            s.outcome = "accepted"
            orders[key] = s.fields
        if (
            s.outcome == "rejected"
            and s.intent_id is not None
            and s.user
            and s.kind != "bad_text:intent_id"
        ):
            # the event's message id is rej:<user>:<intent_id>: a second one is de-duplicated
            if key in rejected_events:
                s.event_expected = False
            rejected_events.add(key)
            if s.reasons == {"insufficient_balance"}:
                orders[key] = s.fields  # the venue refused it: its order row exists
            elif key not in orders and key not in refusals and not s.reasons & UNKEYED:
                (refusals[key],) = s.reasons


# ------------------------------------------------------------------ process
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` (``VmRSS`` of ``/proc/<pid>/status``), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture
async def execution(
    nats_url: str, database_url: str, tmp_path: Path
) -> AsyncIterator[subprocess.Popen]:
    """``tradebus-execution`` as its own process on the test's NATS and database."""
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(ACCOUNTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBUS_")}
    env.update(
        TRADEBUS_NATS_URL=nats_url,
        TRADEBUS_DATABASE_URL=database_url,
        TRADEBUS_ACCOUNTS_FILE=str(accounts),
        TRADEBUS_METRICS_PORT=str(free_port()),
        TRADEBUS_LOG_LEVEL="warning",
        TRADEBUS_INTENT_RATE="0",  # no rate limit: every message is judged on its own
    )
    log = open(tmp_path / "execution.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [entry_point("tradebus-execution")], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    nc = await nats.connect(nats_url)
    try:

        async def ready() -> bool:
            assert proc.poll() is None, (
                f"execution exited: {(tmp_path / 'execution.log').read_text()[-3000:]}"
            )
            return await consumer_exists(nc, subjects.STREAM_DEADLETTER, "execution-deadletters")

        await eventually(ready, timeout=60, what="execution to start")
        yield proc
    finally:
        await nc.close()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class Events:
    """Every order event on the EXEC stream, by ``(user, source)``."""

    def __init__(self) -> None:
        self.by_source: dict[tuple[str | None, str | None], list[OrderEvent]] = defaultdict(list)
        self.count = 0

    async def collect(self, msg: Msg) -> None:
        event = decode_event(msg.data)
        self.by_source[(event.user, event.source)].append(event)
        self.count += 1


async def publish_all(nc: NATS, sent: list[Sent]) -> float:
    """Publish ``sent`` in order on one connection, ``WINDOW`` acks in flight; returns seconds.

    Fills in each message's stream sequence, or ``dropped`` if the stream kept
    no new copy (duplicate message id) or nothing stored it.
    """
    acks = PublishAcks(nc)  # nats-py's publish_async never resolves an error reply
    await acks.start()
    started = time.monotonic()
    window: asyncio.Semaphore = asyncio.Semaphore(WINDOW)
    futures = []
    for s in sent:
        headers = {"Nats-Msg-Id": s.msg_id} if s.msg_id else None
        await window.acquire()
        future = await acks.publish(s.subject, s.payload, headers)
        future.add_done_callback(lambda _: window.release())
        futures.append(future)
    for s, future in zip(sent, futures, strict=True):
        try:
            ack = json.loads(await asyncio.wait_for(future, 60))
        except (nats.errors.Error, TimeoutError) as exc:
            s.dropped, s.outcome, s.reason = True, "not_stored", type(exc).__name__
            continue
        if ack.get("duplicate"):
            s.dropped, s.outcome = True, "stream_duplicate"
        else:
            s.stream, s.seq = ack["stream"], ack["seq"]
    return time.monotonic() - started


async def drained(nc: NATS, proc: subprocess.Popen, timeout: float) -> float:
    """Wait until execution has acked everything; returns seconds waited."""
    started = time.monotonic()

    async def done() -> bool:
        assert proc.poll() is None, "execution exited"
        return await intents_settled(nc)

    await eventually(done, timeout=timeout, what="execution to drain INTENTS")
    return time.monotonic() - started


async def run_round(
    nc: NATS, proc: subprocess.Popen, sent: list[Sent], timeout: float
) -> tuple[float, float]:
    published = await publish_all(nc, sent)
    waited = await drained(nc, proc, timeout)
    return published, waited


async def over_max_payload(nats_url: str) -> str:
    """A raw ``PUB`` one byte over ``max_payload``, as a client without checks would send it.

    Returns the server's answer (it refuses the message and closes the connection).
    Only the ``PUB`` line is sent: the server judges the size from it and closes at once,
    so writing the payload after it races the close (a reset on the writer's side).
    """
    host, port = nats_url.removeprefix("nats://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        info = json.loads((await reader.readline()).split(b" ", 1)[1])
        assert info["max_payload"] == MAX_PAYLOAD
        writer.write(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
        size = MAX_PAYLOAD + 1
        writer.write(b"PUB intent.alice.big %d\r\n" % size)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), 10)
        return answer.decode(errors="replace").strip()
    finally:
        writer.close()


def rejection_table(sent: list[Sent]) -> str:
    counts = Counter((s.outcome, s.reason) for s in sent)
    lines = [f"{'outcome':<18} {'reason':<22} {'count':>6}"]
    for (outcome, reason), n in sorted(counts.items(), key=lambda kv: (kv[0][0], -kv[1])):
        lines.append(f"{outcome:<18} {reason or '-':<22} {n:>6}")
    return "\n".join(lines)


async def check(sent: list[Sent], database_url: str, events: Events, seed: int) -> None:
    """Every stored message's outcome is what :func:`replay` says, with a row and an event."""
    replay(sent)
    conn = await asyncpg.connect(database_url)
    try:
        rejected = {
            (r["stream"], r["stream_seq"]): r
            for r in await conn.fetch(
                "SELECT stream, stream_seq, user_id, source, intent_id, reason, message"
                " FROM rejected_intents"
            )
        }
        orders: dict[tuple[str | None, int | None], asyncpg.Record] = {
            (subjects.intents_stream(r["user_id"]), r["stream_seq"]): r
            for r in await conn.fetch(
                "SELECT stream_seq, user_id, intent_id, status, reason FROM orders"
            )
        }
    finally:
        await conn.close()
    problems: list[str] = []
    stored = [s for s in sent if not s.dropped]
    for s in stored:
        assert s.seq is not None
        row = rejected.get((s.stream, s.seq))
        order = orders.get((s.stream, s.seq))
        if s.outcome == "answered":
            if row is not None or order is not None:
                problems.append(f"seq {s.seq} {s.kind}: a repeat made a row")
            continue
        if s.outcome == "accepted":
            if order is None or order["status"] != "accepted" or row is not None:
                problems.append(f"seq {s.seq} {s.kind}: not accepted: order={order} rejected={row}")
                continue
            s.reason = ""
            got = [e for e in events.by_source[(s.user, s.source)] if isinstance(e, OrderAccepted)]
            if [e.intent_id for e in got] != [s.intent_id]:
                problems.append(f"seq {s.seq} {s.kind}: OrderAccepted events {got}")
            continue
        # rejected: a rejected_intents row, or a venue-rejected order row
        if row is not None:
            s.reason = row["reason"]
        elif order is not None and order["status"] == "rejected":
            s.reason = order["reason"] or ""
        else:
            problems.append(f"seq {s.seq} {s.kind}: no rejection kept (order={order})")
            continue
        if s.reason not in s.reasons:
            problems.append(
                f"seq {s.seq} {s.kind}: reason {s.reason!r}, expected {sorted(s.reasons)}"
            )
        if row is not None and not row["message"]:
            problems.append(f"seq {s.seq} {s.kind}: no message")
        if s.user is not None:
            refused = [
                e for e in events.by_source[(s.user, s.source)] if isinstance(e, OrderRejected)
            ]
            want = 1 if s.event_expected else 0
            if len(refused) != want or any(e.reason != s.reason for e in refused):
                problems.append(
                    f"seq {s.seq} {s.kind}: OrderRejected events {refused}, want {want}"
                )
    extra = set(rejected) - {(s.stream, s.seq) for s in stored}
    if extra:
        problems.append(f"rejections of unknown sequences: {sorted(extra)[:10]}")
    assert not problems, f"seed {seed}: {len(problems)} problems:\n" + "\n".join(problems[:40])


async def test_hostile_intents_are_refused_recorded_and_survived(
    execution: subprocess.Popen, nats_url: str, database_url: str
) -> None:
    seed = int(os.environ.get("HOSTILE_SEED", random.randrange(2**32)))
    print(f"\nHOSTILE_SEED={seed} HOSTILE_COUNT={COUNT}")
    gen = Generator(random.Random(seed))
    events = Events()
    nc = await nats.connect(nats_url, max_reconnect_attempts=-1)
    try:
        await ensure_streams(nc.jetstream())
        await nc.jetstream().subscribe(
            subjects.EXEC_EVT_ALL,
            cb=events.collect,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
            pending_msgs_limit=-1,
            pending_bytes_limit=-1,
        )
        # the stream itself drops a repeated Nats-Msg-Id: what a strategy host's retry sets
        twin = gen.valid()
        twin.msg_id = twin.intent_id
        copy = Sent(**{**twin.__dict__, "kind": "msg_id_repeat", "source": twin.source})
        warmup = [twin, copy, *batch(gen, WARMUP, huge=12)]
        for shaped in gen.every_structured():  # every structure-aware case, in every run
            warmup.insert(gen.rng.randrange(2, len(warmup) + 1), shaped)
        t_pub, t_drain = await run_round(nc, execution, warmup, timeout=300)
        assert copy.dropped and copy.outcome == "stream_duplicate"
        rss_before = rss_kb(execution.pid)
        main = batch(gen, COUNT, huge=24)
        t_pub, t_drain = await run_round(nc, execution, main, timeout=900)
        rss_after = rss_kb(execution.pid)
        rate = COUNT / (t_pub + t_drain)
        # one byte over max_payload: nats-py refuses to send it, the server refuses it too
        with pytest.raises(nats.errors.MaxPayloadError):
            await nc.jetstream().publish("intent.alice.big", b"x" * (MAX_PAYLOAD + 1))
        answer = await over_max_payload(nats_url)
        assert "Maximum Payload" in answer, answer
        all_sent = warmup + main
        replay(all_sent)
        expected_events = sum(
            1
            for s in all_sent
            if not s.dropped
            and s.user
            and s.outcome in ("accepted", "rejected")
            and s.event_expected
        )
        await eventually(
            lambda: events.count >= expected_events,
            timeout=60,
            what=f"{expected_events} events",
            detail=lambda: f"{events.count} events",
        )
        await check(all_sent, database_url, events, seed)
        for user in ("alice", "bob"):
            info = await nc.jetstream().stream_info(subjects.intents_stream(user))
            print(
                f"stream INTENTS_{user}: {info.state.messages} messages left"
                f" ({info.state.bytes / 1e6:.3f} MB) of {info.state.last_seq} stored"
            )
        # the ~1 MB intents never reach execution: each user's stream stores at most
        # its max_msg_size (8 KiB), and refuses the rest with an error ack
        huge = [s for s in all_sent if s.kind.startswith("1mb") or s.kind == "valid_1mb"]
        assert huge and all(s.outcome == "not_stored" for s in huge), {
            (s.kind, s.outcome) for s in huge
        }
        print(
            f"main round: {COUNT} intents, publish {t_pub:.1f}s + drain {t_drain:.1f}s"
            f" = {rate:.0f} intents/s"
        )
        print(
            f"execution RSS after warm-up {rss_before / 1024:.1f} MiB,"
            f" after {COUNT}: {rss_after / 1024:.1f} MiB "
            f"(+{(rss_after - rss_before) / 1024:.1f} MiB)"
        )
        print(f"over max_payload: nats-py raises MaxPayloadError; raw PUB -> {answer!r}")
        print(rejection_table(all_sent))
        refused_by_server = Counter(repr(s.subject) for s in all_sent if s.outcome == "not_stored")
        print(
            "not stored by JetStream (no stream answers for that subject):", dict(refused_by_server)
        )
        kinds = Counter(s.kind.split(":")[0] for s in all_sent)
        print("kinds:", dict(sorted(kinds.items())))
        assert execution.poll() is None, "execution exited"
        assert rss_after - rss_before < RSS_MARGIN_KB, f"RSS grew {rss_before} -> {rss_after} KiB"
    finally:
        await nc.close()


async def order_ids(database_url: str) -> list[str]:
    """Intent ids of every order row, in stream order."""
    conn = await asyncpg.connect(database_url)
    try:
        return [
            r["intent_id"]
            for r in await conn.fetch("SELECT intent_id FROM orders ORDER BY stream_seq")
        ]
    finally:
        await conn.close()


async def raw_pub(nats_url: str, subject: bytes, payload: bytes, header: bytes = b"") -> bytes:
    """Publish with a bare ``PUB`` (``HPUB`` with ``header``: no client-side checks) and
    return what the server said."""
    host, port = nats_url.removeprefix("nats://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        await reader.readline()  # INFO
        connect = b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\nPING\r\n'
        writer.write(connect)
        if header:
            size = len(header) + len(payload)
            writer.write(b"HPUB %s %d %d\r\n" % (subject, len(header), size))
            writer.write(header + payload + b"\r\nPING\r\n")
        else:
            writer.write(b"PUB %s %d\r\n%s\r\nPING\r\n" % (subject, len(payload), payload))
        await writer.drain()
        answer = b""
        while answer.count(b"PONG") < 2 and b"-ERR" not in answer:
            chunk = await asyncio.wait_for(reader.read(4096), 10)
            if not chunk:
                break
            answer += chunk
        return answer
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("subject", "header", "reason"),
    [
        (b"intent.al\xffce.manual", b"", "bad_subject"),
        (b"intent.alice.m\xc3", b"", "bad_subject"),
        (b"intent.al\x00ce.manual", b"", "bad_subject"),
        (b"intent.alice.manual", b"NATS/1.0 \xff\xfe\r\n\r\n", "duplicate"),
        (b"intent.alice.manual", b"NATS/1.0 408 Request Timeout\r\n\r\n", "duplicate"),
    ],
    ids=["invalid-utf8-user", "truncated-utf8-source", "nul-in-user", "bad-status", "fake-408"],
)
async def test_bytes_no_client_would_send_do_not_wedge_execution(
    execution: subprocess.Popen,
    nats_url: str,
    database_url: str,
    subject: bytes,
    header: bytes,
    reason: str,
) -> None:
    """A raw connection's subject or header bytes: refused or executed, and execution alive."""
    payload = b'{"type":"PlaceOrder","intent_id":"raw-1","account":"alice-paper",'
    payload += b'"symbol":"BTCUSDT","side":"buy","qty":"0.001","price":"60000"}'
    answer = await raw_pub(nats_url, subject, payload, header)
    print(f"\nraw PUB {subject!r} -> {answer!r}")
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        stored = (await js.stream_info(subjects.intents_stream("alice"))).state.last_seq
        ack = await js.publish("intent.alice.manual", payload.replace(b"raw-1", b"after-raw"))
        await drained(nc, execution, timeout=15)
        conn = await asyncpg.connect(database_url)
        try:
            order = await conn.fetchrow("SELECT status FROM orders WHERE stream_seq=$1", ack.seq)
            kept = await conn.fetch("SELECT subject, reason FROM rejected_intents")
        finally:
            await conn.close()
        print(f"stored {stored}, after: {order}, refusals: {[tuple(r) for r in kept]}")
        assert order is not None and order["status"] == "accepted"
        if reason == "bad_subject":
            assert [r["reason"] for r in kept] == ["bad_subject"] * stored
        else:  # a valid intent under a strange header: placed (raw-1), then after-raw
            assert await order_ids(database_url) == ["raw-1", "after-raw"]
        assert execution.poll() is None
    finally:
        await nc.close()
