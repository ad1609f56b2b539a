"""One user's flood neither delays another user nor fills the server (issue 14, point 4).

A flood of 20,000 intents from one user used to delay every other user by the
whole backlog (another user's order latency went from 5 ms to 47 s), and 300
intents of 1 MB added 300 MB to the one ``INTENTS`` stream, kept 7 days.
Now each user has a stream of their own, fetched on its own and scheduled
round-robin, within limits nats-server enforces (``max_payload`` of the
person's NATS account, the backlog and message size of ``INTENTS_<user>``),
and execution refuses intents over the user's rate (``quota_intent_rate``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import nats.errors

from tests.security.conftest import PAPER_ACCOUNTS, Person, SecureNats, place, running_execution
from tests.support.services import eventually
from tradebus.natsauth.claims import parse_creds

FLOOD = 20_000
PROBES = 150
FLOODER = """
import asyncio, json, sys
import nats

async def main(url, creds, count):
    nc = await nats.connect(url, user_credentials=creds, pending_size=64 * 1024 * 1024)
    for i in range(count):
        body = {"type": "PlaceOrder", "intent_id": f"flood-{i}", "account": "alice-paper",
                "symbol": "BTCUSDT", "side": "buy", "qty": "0.001", "price": "20000"}
        await nc.publish("intent.alice.manual", json.dumps(body).encode())
        if i % 500 == 499:
            await nc.flush()
    await nc.flush()
    await nc.close()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def test_a_flood_from_one_user_leaves_another_users_latency_alone(
    secure_nats: SecureNats, database_url: str, tmp_path: Path
) -> None:
    async with running_execution(secure_nats, database_url, tmp_path, PAPER_ACCOUNTS):
        alice = await Person.join(secure_nats, "alice")
        bob = await Person.join(secure_nats, "bob")
        flooding = await asyncio.create_subprocess_exec(  # the attacker is another process
            sys.executable, "-c", FLOODER, secure_nats.url,
            str(secure_nats.person_creds("alice")), str(FLOOD),
        )  # fmt: skip
        await asyncio.sleep(0.2)  # the backlog is building up
        latencies: list[float] = []
        for i in range(PROBES):
            intent_id = f"bob-probe-{i}"
            started = time.monotonic()
            await bob.conn.nc.publish("intent.bob.manual", place(intent_id, "bob-paper"))
            answer = await bob.wait_answer(intent_id, timeout=30)
            assert type(answer).__name__ == "OrderAccepted", answer
            arrived = next(t for t, e in bob.events if e is answer)
            latencies.append(arrived - started)
            await asyncio.sleep(0.02)
        assert await flooding.wait() == 0
        p99 = statistics.quantiles(latencies, n=100)[98]
        shown = sorted(round(x * 1000, 1) for x in latencies)
        print(f"\nbob during alice's flood: p50 {shown[len(shown) // 2]} ms,"
              f" p99 {p99 * 1000:.1f} ms, max {shown[-1]} ms over {len(shown)} orders")  # fmt: skip
        # Without fair queueing bob's intents waited behind the whole flood (seconds); with
        # it his median is a few ms. The bounds leave room for a loaded 2-core CI machine,
        # where a single scheduling hiccup is the p99 of 150 probes.
        p95 = statistics.quantiles(latencies, n=100)[94]
        assert p95 < 0.1, f"bob's p95 {p95 * 1000:.0f} ms during alice's flood (ms): {shown}"
        assert p99 < 0.25, f"bob's p99 {p99 * 1000:.0f} ms during alice's flood (ms): {shown}"
        # alice was not starved either: all of her flood that the server stored is
        # answered, accepted within her rate, the rest refused with the reason
        operator = await secure_nats.connect("operator")
        js = operator.nc.jetstream()

        async def drained() -> bool:
            info = await js.consumer_info("INTENTS_alice", "execution")
            return (info.num_pending or 0) + (info.num_ack_pending or 0) == 0

        await eventually(drained, timeout=180, what="alice's flood handled")
        stored = (await js.stream_info("INTENTS_alice")).state.last_seq
        await eventually(
            lambda: len({getattr(e, "intent_id", None) for _, e in alice.events}) >= stored,
            what="an answer to each of alice's stored intents",
        )
        reasons = Counter(getattr(e, "reason", type(e).__name__) for _, e in alice.events)
        assert reasons["quota_intent_rate"] > 0 and reasons["OrderAccepted"] > 0, reasons


async def test_the_server_refuses_oversized_intents_and_bounds_each_backlog(
    secure_nats: SecureNats, database_url: str, tmp_path: Path
) -> None:
    operator = await secure_nats.connect("operator")
    js = operator.nc.jetstream()
    async with running_execution(
        secure_nats, database_url, tmp_path, PAPER_ACCOUNTS, intent_backlog=500
    ):
        # a raw client, so the server's answer is read however fast it closes
        reader, writer = await asyncio.open_connection(*_host_port(secure_nats.url))
        info = json.loads((await reader.readline()).partition(b" ")[2])
        login = jwt_login(secure_nats.person_creds("alice"), info["nonce"])
        huge = b'{"type":"PlaceOrder","intent_id":"' + b"x" * 1_000_000 + b'"}'
        writer.write(b"CONNECT " + json.dumps(login).encode() + b"\r\nPING\r\n")
        assert await reader.readline() == b"PONG\r\n"
        writer.write(b"PUB intent.alice.manual %d\r\n%s\r\n" % (len(huge), huge))
        await writer.drain()
        answer = await reader.readline()
        assert answer == b"-ERR 'Maximum Payload Violation'\r\n", answer
        writer.close()

        # a bot's intent over the size limit is refused by JetStream as well
        strategy = await secure_nats.connect("strategy")
        try:
            await strategy.nc.jetstream().publish("intent.alice.bot", b"{" + b" " * 20_000 + b"}")
            raise AssertionError("a 20 kB intent was stored")
        except nats.errors.Error as exc:
            assert "maximum" in str(exc).lower(), exc
    stored = 0
    for info in await js.streams_info():
        if "INTENT" in (info.config.name or ""):
            stored += info.state.bytes
    assert stored < 100_000, f"{stored} bytes of intents stored"

    # execution is down: one user's backlog is bounded, beyond it the server says why
    bob = await secure_nats.connect("bob")
    refused = 0
    for i in range(800):
        try:
            await bob.nc.jetstream().publish(
                "intent.bob.manual", place(f"b-{i}", "bob-paper", price="20000")
            )
        except nats.errors.Error as exc:
            assert "maximum messages" in str(exc).lower(), exc
            refused += 1
    assert refused == 300
    alice_again = await secure_nats.connect("alice")
    ack = await alice_again.nc.jetstream().publish(
        "intent.alice.manual", place("a-after", "alice-paper")
    )
    assert ack.stream == "INTENTS_alice"  # bob's full backlog is not alice's


def jwt_login(creds: Path, nonce: str) -> dict[str, object]:
    """The CONNECT options of a user with ``creds``: its JWT and its signature of the
    server's ``nonce`` (base64url, as nats-server reads it)."""
    user_jwt, key = parse_creds(creds.read_text())
    sig = base64.urlsafe_b64encode(key.sign(nonce.encode())).rstrip(b"=").decode()
    return {"jwt": user_jwt, "sig": sig, "verbose": False}


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 4222
