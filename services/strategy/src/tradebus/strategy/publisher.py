"""Publishes intents and KV puts to JetStream in order, with ``Nats-Msg-Id`` = intent id.

Intents and bot snapshots (KV puts, which are JetStream publishes on
``$KV.<bucket>.<key>``) are queued synchronously by the dispatcher and
published by one task, so they reach the server in the order the bots
emitted them: a snapshot queued before an intent is sent before it. Publishing is
pipelined (``publish_async``); a publish that is not acknowledged is sent
again with the same message id, which JetStream de-duplicates within its
duplicate window, and which the ledger de-duplicates forever by intent id.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import msgspec
import nats.errors
from nats.js import JetStreamContext

from tradebus.common import subjects
from tradebus.common.bus import MSG_ID
from tradebus.common.clock import Clock
from tradebus.common.codec import encode
from tradebus.common.messages import Intent
from tradebus.strategy.host_metrics import HostMetrics

log = logging.getLogger(__name__)

Item = tuple[str, bytes, str | None, str | None, int | None]
"""(subject, payload, Nats-Msg-Id, intent type or None for a KV put, tick ts_init)."""


class IntentPublisher:
    """Queue + single publishing task (see module docstring).

    Parameters
    ----------
    js
        JetStream context.
    clock
        For the tick-to-intent latency.
    metrics
        Host metrics (intents published, latency).
    batch
        Most intents in flight at once.
    """

    def __init__(
        self, js: JetStreamContext, clock: Clock, metrics: HostMetrics, batch: int = 512
    ) -> None:
        self._js = js
        self._clock = clock
        self._metrics = metrics
        self._batch = batch
        self._queue: deque[Item] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def submit(self, subject: str, intent: Intent, tick_ts_init: int | None) -> None:
        """Queue one intent (never blocks).

        Its ``ts_init`` is set to now (the host's clock, ns): a core stamps its
        intents with the market event's time, which is the recording's time in
        a replay; execution measures intent-to-ack latency from ``ts_init``.
        """
        intent = msgspec.structs.replace(intent, ts_init=self._clock.now_ns())
        item = (subject, encode(intent), intent.intent_id, type(intent).__name__, tick_ts_init)
        self._queue.append(item)
        self._idle.clear()
        self._wake.set()

    def put_kv(self, bucket: str, key: str, value: bytes) -> None:
        """Queue a KV put (never blocks); it keeps its place among the intents."""
        self._queue.append((subjects.kv_subject(bucket, key), value, None, None, None))
        self._idle.clear()
        self._wake.set()

    def put_state(self, bot: str, record: bytes) -> None:
        """Queue the snapshot record of ``bot`` for KV ``bot_state``."""
        self.put_kv(subjects.KV_BOT_STATE, bot, record)

    async def drain(self, timeout: float) -> bool:
        """Wait until every queued intent is acknowledged; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def run(self) -> None:
        """Publish forever (cancel the task to stop)."""
        backoff = 0.05
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            items = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
            failed = await self._publish(items)
            if failed:
                self._queue.extendleft(reversed(failed))
                log.warning("intent publish failed; retrying", extra={"count": len(failed)})
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)
            else:
                backoff = 0.05

    async def _publish(self, items: list[Item]) -> list[Item]:
        futures = []
        try:
            for subject, payload, msg_id, _, _ in items:
                headers = {MSG_ID: msg_id} if msg_id is not None else None
                futures.append(await self._js.publish_async(subject, payload, headers=headers))
        except Exception as exc:  # not sent: connection down, too many stalled acks
            log.warning("intent publish not sent", extra={"error": repr(exc)})
        results: list[object] = list(await asyncio.gather(*futures, return_exceptions=True))
        results += [TimeoutError("not sent")] * (len(items) - len(futures))
        failed = []
        now = self._clock.now_ns()
        for item, result in zip(items, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, (nats.errors.Error, TimeoutError)):
                    log.error("intent publish error", extra={"error": repr(result)})
                failed.append(item)
                continue
            _, _, _, kind, tick_ts = item
            if kind is None:
                continue
            self._metrics.intents.labels(type=kind).inc()
            if tick_ts is not None:
                self._metrics.tick_to_intent.observe(max(0, now - tick_ts) / 1e9)
        return failed
