"""Records what crosses the bus, with the time each message reached this process.

The callbacks do as little as possible (append the raw payload and
``time.perf_counter_ns()`` to lists) so the recorder does not become the
bottleneck; everything is decoded after the run (:mod:`bench.analysis`).
Core-NATS subscriptions also see the subjects JetStream captures, so
``intent.>`` shows every intent at the moment its publisher sends it.
"""

from __future__ import annotations

import time

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from tradebus.common import subjects


class Recording:
    """Raw payloads and receive times (``perf_counter_ns``) of ticks and intents."""

    def __init__(self) -> None:
        self.tick_data: list[bytes] = []
        self.tick_times: list[int] = []
        self.intent_data: list[bytes] = []
        self.intent_times: list[int] = []

    def cut(self) -> Recording:
        """A copy of what was recorded so far (later messages are not part of the run)."""
        out = Recording()
        ticks, intents = len(self.tick_times), len(self.intent_times)
        out.tick_data, out.tick_times = self.tick_data[:ticks], self.tick_times[:ticks]
        out.intent_data, out.intent_times = self.intent_data[:intents], self.intent_times[:intents]
        return out


class BusRecorder:
    """A NATS connection subscribed to ``md.>`` and ``intent.>`` with unlimited pending limits.

    Parameters
    ----------
    url
        NATS server URL.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.nc: NATS | None = None
        self.recording = Recording()

    async def start(self) -> None:
        """Connect and subscribe; returns once the server has the subscriptions."""
        rec = self.recording
        self.nc = await nats.connect(self.url, name="tradebus-bench", max_reconnect_attempts=-1)

        async def on_tick(msg: Msg) -> None:
            rec.tick_times.append(time.perf_counter_ns())
            rec.tick_data.append(msg.data)

        async def on_intent(msg: Msg) -> None:
            rec.intent_times.append(time.perf_counter_ns())
            rec.intent_data.append(msg.data)

        for subject, cb in ((subjects.MD_ALL, on_tick), (subjects.INTENT_ALL, on_intent)):
            await self.nc.subscribe(subject, cb=cb, pending_msgs_limit=-1, pending_bytes_limit=-1)
        await self.nc.flush()

    @property
    def ticks(self) -> int:
        """Ticks received so far."""
        return len(self.recording.tick_times)

    @property
    def intents(self) -> int:
        """Intents received so far."""
        return len(self.recording.intent_times)

    def last_intent_age(self) -> float:
        """Seconds since the last intent arrived (or since the start if none did)."""
        times = self.recording.intent_times
        last = times[-1] if times else 0
        return (time.perf_counter_ns() - last) / 1e9

    async def close(self) -> None:
        """Close the connection (pending messages are dropped)."""
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.close()
