"""KV reads of the keys present now (``tradebus.common.bus.kv_live_entries``), on real NATS.

The watch that reads them may end (nats-py's "nothing to read" marker) before its first
entries arrive on a busy machine; the read then asks the stream directly. Both paths
must give the same answer: live keys of the pattern with their last values, deleted and
purged keys left out, other patterns' keys ignored, and an answer at once when there is
nothing (a strategy host reads its bots' leases on every heartbeat).
"""

from __future__ import annotations

import time

import nats
import pytest

from tradebus.common.bus import _kv_entries_by_subject, kv_live_entries


@pytest.mark.parametrize("direct", [False, True], ids=["watch", "stream-info"])
async def test_live_entries_of_a_pattern(nats_url: str, direct: bool) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        kv = await js.create_key_value(bucket=f"kvreads{int(direct)}", history=1)

        async def read(pattern: str, headers_only: bool = False) -> dict[str, bytes]:
            if direct:
                return await _kv_entries_by_subject(kv, pattern, headers_only)
            return await kv_live_entries(kv, pattern, headers_only=headers_only)

        started = time.monotonic()
        assert await read(">") == {}
        await kv.put("host.a", b"A")
        await kv.put("host.b", b"B1")
        await kv.put("host.b", b"B2")
        await kv.put("host.c", b"C")
        await kv.delete("host.c")
        await kv.put("host.d", b"D")
        await kv.purge("host.d")
        assert await read("bot.*") == {}  # other keys only
        assert await read("host.*") == {"host.a": b"A", "host.b": b"B2"}
        assert await read("host.*", headers_only=True) == {"host.a": b"", "host.b": b""}
        await kv.put("bot.x", b"alice")
        assert await read(">") == {"host.a": b"A", "host.b": b"B2", "bot.x": b"alice"}
        elapsed = time.monotonic() - started
        assert elapsed < 0.9, "no read waits for entries that are not there"
    finally:
        await nc.close()
