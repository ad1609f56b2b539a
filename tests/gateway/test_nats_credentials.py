"""A user created through the API uses the NATS CLI's way in at once: no config edit, no restart.

The gateway runs as compose runs it, on a nats-server in operator mode
(``secure_gateway``). An admin creates ``zoe`` (in no accounts file, so in no
preloaded account); the gateway pushes her account JWT to the running server.
She fetches her ``.creds`` from ``GET /api/v1/me/nats-credentials`` and connects
with nats-py as the NATS CLI would: her own intents go into her stream (marked
as a person's), her own order events reach her, and another user's subjects are
refused by the server. Disabling her closes her connection.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import nats.errors
import pytest
from nats.aio.msg import Msg

from tests.gateway.conftest import Gateway
from tests.support.intents import ensure_intent_streams
from tests.support.secure_nats import SecureNats
from tradebus.common import subjects
from tradebus.common.bus import MSG_ID, ensure_streams
from tradebus.natsauth.claims import UserNats, decode, parse_creds
from tradebus.natsauth.identities import write_secret


async def test_a_user_created_through_the_api_gets_working_nats_credentials(
    secure_gateway: Gateway, secure_nats: SecureNats, tmp_path: Path
) -> None:
    operator = await secure_nats.connect("operator")
    ojs = operator.nc.jetstream()
    await ensure_streams(ojs)
    await ensure_intent_streams(ojs, ["zoe", "alice"])  # as execution makes them
    with pytest.raises((nats.errors.Error, OSError)):  # no account of zoe yet
        await secure_nats.connect("zoe")

    admin = secure_gateway.admin
    assert admin is not None
    password = secrets.token_urlsafe(16)
    created = await admin.post(
        "/api/v1/users", json={"id": "zoe", "password": password, "role": "user"}
    )
    assert created.status_code == 201, created.text
    account = created.json()["nats_account"]
    assert account == secure_nats.registrar().account_public_key("zoe")

    zoe = await secure_gateway.sign_in("zoe", password)
    answer = await zoe.get("/api/v1/me/nats-credentials", params={"days": 1})
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    user_jwt, _ = parse_creds(answer.text)
    claims = decode(user_jwt, UserNats)
    assert claims.nats.issuer_account == account and claims.name == "zoe"
    creds = tmp_path / "zoe.creds"
    write_secret(creds, answer.text)

    closed = asyncio.Event()

    async def on_closed() -> None:
        closed.set()

    conn = await secure_nats.connect(creds, closed_cb=on_closed)
    # her own intent lands in her stream, marked as a person's
    ack = await conn.nc.jetstream().publish(
        subjects.intent("zoe", "manual"), b"{}", headers={MSG_ID: "zoe-1"}
    )
    assert ack.stream == subjects.intents_stream("zoe")
    stored = await ojs.get_msg(subjects.intents_stream("zoe"), ack.seq)
    assert stored.subject == subjects.person_intent("zoe", "manual")
    # her own order events reach her (a stream import is live a moment after the SUB)
    events: list[str] = []

    async def on_event(msg: Msg) -> None:
        events.append(msg.subject)

    await conn.nc.subscribe("exec.evt.zoe.>", cb=on_event)
    await conn.nc.flush()
    for _ in range(200):
        await operator.nc.publish("exec.evt.zoe.manual", b"{}")
        await operator.nc.flush()
        await asyncio.sleep(0.02)
        if events:
            break
    assert events and set(events) == {"exec.evt.zoe.manual"}
    assert await conn.violations() == []

    # another user's intents and events: refused by the server, nothing arrives
    await conn.nc.publish(subjects.intent("alice", "manual"), b"{}")
    await conn.nc.subscribe("exec.evt.alice.>", cb=on_event)
    refused = await conn.violations()
    assert len(refused) == 2, refused
    assert "publish" in refused[0] and "intent.alice.manual" in refused[0]
    assert "subscription" in refused[1] and "exec.evt.alice.>" in refused[1]
    await operator.nc.publish("exec.evt.alice.manual", b"{}")
    await operator.nc.flush()
    await asyncio.sleep(0.3)
    assert "exec.evt.alice.manual" not in events
    assert (await ojs.stream_info(subjects.intents_stream("alice"))).state.messages == 0

    # the server was never restarted: connections made before zoe existed never dropped
    assert operator.nc.is_connected and operator.nc.stats["reconnects"] == 0

    # disabling her in the API closes her NATS connection and refuses her credentials
    disabled = await admin.patch("/api/v1/users/zoe", json={"disabled": True})
    assert disabled.status_code == 200, disabled.text
    await asyncio.wait_for(closed.wait(), 10)
    with pytest.raises((nats.errors.Error, OSError)):
        await secure_nats.connect(creds)


async def test_without_nats_accounts_the_gateway_says_so(gateway: Gateway) -> None:
    person = await gateway.person("yves")
    answer = await person.get("/api/v1/me/nats-credentials")
    assert answer.status_code == 503, answer.text
    assert "manages no NATS accounts" in answer.json()["message"]
    anonymous = await gateway.client().get("/api/v1/me/nats-credentials")
    assert anonymous.status_code == 401
