"""Execution's standing pull request (:class:`tradebus.execution.pull.Puller`) on real NATS."""

from __future__ import annotations

import asyncio
import contextlib

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from tests.support.services import eventually
from tradebus.execution.pull import Puller


async def test_puller_takes_what_there_is_room_for_in_order_and_waits_for_more(
    nc: NATS,
) -> None:
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="P", subjects=["p.>"]))
    await js.add_consumer("P", ConsumerConfig(durable_name="c", ack_policy=AckPolicy.EXPLICIT))
    for i in range(10):
        await js.publish("p.x", str(i).encode())
    taken: list[Msg] = []
    room = 4
    roomy = asyncio.Event()
    puller = Puller(nc, "P", "c", taken.append, lambda: room - len(taken), roomy, expires=1.0)
    task = asyncio.create_task(puller.run())
    try:
        await eventually(lambda: len(taken) == 4, what="the first 4")
        await asyncio.sleep(0.3)
        assert len(taken) == 4  # no room: nothing more is asked for
        room = 100
        roomy.set()
        await eventually(lambda: len(taken) == 10, what="the other 6")
        await asyncio.sleep(1.5)  # a request expires meanwhile: another one is sent
        await js.publish("p.x", b"10")
        await eventually(lambda: len(taken) == 11, timeout=2.0, what="a message sent later")
        assert [m.data for m in taken] == [str(i).encode() for i in range(11)]
        for msg in taken:
            await msg.ack()
        info = await js.consumer_info("P", "c")
        assert info.num_pending == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
