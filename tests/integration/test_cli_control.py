"""``tradebus bots ...`` and ``tradebus intent ...`` against a real strategy host and execution.

The CLI runs as a person runs it, through ``tradebus.cli.main.main(argv)``
(exit status and printed output); it uses ``asyncio.run`` itself, so it runs
in a worker thread while the services run in the test's event loop. The raw
NATS equivalents (plain JSON bodies, no ``type`` field) are checked too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from tests.support.bot_files import BOTS_V1, BOTS_V2, LADDER
from tests.support.cli import tradebus
from tests.support.execution import execution_service, execution_settings
from tests.support.services import eventually, service
from tradebus.common import subjects
from tradebus.common.codec import decode_bots_reply
from tradebus.common.messages import BotsReply
from tradebus.strategy.bootstrap import run as run_strategy
from tradebus.strategy.settings import StrategySettings

HOST = "cli-host"
LEASE_SECONDS = 2.0

BOTS_BAD = f"""
defaults: {{venue: binance}}
strategies:
  btc: {{strategy: ladder, {LADDER}}}
users:
  - {{user: alice, account: alice-paper, strategies: {{btc: {{}}}}}}
  - {{user: bob, account: bob-paper, strategies: {{btc: {{total_quote: "0"}}}}}}
"""
ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "10000"}}
  - {id: bob-paper, user: bob, balances: {USDT: "10000"}}
"""


def status_fields(block: str) -> dict[str, str]:
    """``bots status`` output (``name  value`` lines) as a dict."""
    fields = {}
    for line in block.splitlines():
        name, _, value = line.partition(" ")
        fields[name] = value.strip()
    return fields


async def running(nc: NATS) -> dict[str, str]:
    """Bot id -> state, as the host reports it (raw ``ctl.bots.list``, plain ``{}``)."""
    try:
        raw = await nc.request(subjects.ctl("bots", "list"), b"{}", timeout=0.5)
    except Exception:
        return {}
    reply = decode_bots_reply(raw.data)
    return {s.bot: s.state for s in reply.bots} if isinstance(reply, BotsReply) else {}


async def test_bots_apply_list_status_and_lifecycle(
    nats_url: str, nc: NATS, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ("--nats-url", nats_url)
    v1, v2, bad = tmp_path / "v1.yaml", tmp_path / "v2.yaml", tmp_path / "bad.yaml"
    v1.write_text(BOTS_V1)
    v2.write_text(BOTS_V2)
    bad.write_text(BOTS_BAD)

    # apply before any host runs (the compose one-shot): a dry run writes nothing
    code, out, _ = await tradebus(capsys, "bots", "apply", "-f", str(v1), "--dry-run", *url)
    assert code == 0, out
    assert out.splitlines()[:2] == ["BOT        CHANGE", "---------- ------"]
    assert {tuple(line.split()) for line in out.splitlines()[2:5]} == {
        ("alice-btc", "added"),
        ("bob-vol", "added"),
        ("carol-btc", "added"),
    }
    assert out.splitlines()[5] == (f"would apply {v1}: 3 added, 0 changed, 0 removed, 0 unchanged")
    code, out, _ = await tradebus(capsys, "bots", "apply", "-f", str(v1), *url)
    assert code == 0 and f"applied {v1}: 3 added, 0 changed" in out, out
    code, out, _ = await tradebus(capsys, "bots", "apply", "-f", str(v1), "--json", *url)
    assert code == 0 and json.loads(out) == {
        "added": [],
        "changed": [],
        "removed": [],
        "unchanged": ["alice-btc", "bob-vol", "carol-btc"],
    }

    settings = StrategySettings(
        nats_url=nats_url,
        metrics_port=0,
        stop_timeout_seconds=0.2,
        heartbeat_seconds=0.2,
        lease_seconds=LEASE_SECONDS,
        replica_id=HOST,
    )

    async def host_answers() -> bool:
        return len(await running(nc)) == 3

    async with service(run_strategy, settings, host_answers):
        # `bots apply` left the leases bucket to the host, which set its lease time
        leases = await nc.jetstream().key_value(subjects.KV_LEASES)
        assert (await leases.status()).ttl == LEASE_SECONDS

        # list: a table with every bot once and the host, or JSON
        code, out, _ = await tradebus(capsys, "bots", "list", *url)
        assert code == 0, out
        lines = out.splitlines()
        assert lines[0].split()[:2] == ["BOT", "USER"] and lines[0].split()[-1] == "HOST"
        rows = [line.split() for line in lines[2:-1]]
        assert [(r[0], r[1], r[2], r[3], r[4], r[-1]) for r in rows] == [
            ("alice-btc", "alice", "ladder", "BTCUSDT", "running", HOST),
            ("bob-vol", "bob", "volume", "ETHUSDT", "running", HOST),
            ("carol-btc", "carol", "ladder", "BTCUSDT", "running", HOST),
        ]
        assert lines[-1] == "3 bots on 1 host(s)"
        code, out, _ = await tradebus(capsys, "bots", "list", "--json", *url)
        listed = json.loads(out)
        assert code == 0 and sorted(s["bot"] for s in listed) == [
            "alice-btc",
            "bob-vol",
            "carol-btc",
        ]
        assert {s["host"] for s in listed} == {HOST}
        code, out, _ = await tradebus(capsys, "bots", "list", "--user", "bob", "--json", *url)
        assert [s["bot"] for s in json.loads(out)] == ["bob-vol"]

        # status: the whole block, details included
        code, out, _ = await tradebus(capsys, "bots", "status", "bob-vol", *url)
        assert code == 0, out
        fields = status_fields(out)
        assert (fields["bot"], fields["user"], fields["account"]) == ("bob-vol", "bob", "bob-paper")
        assert (fields["strategy"], fields["symbol"], fields["state"]) == (
            "volume",
            "ETHUSDT",
            "running",
        )
        assert (fields["host"], fields["orders_placed"], fields["avg_price"]) == (HOST, "0", "-")
        assert (fields["group"], fields["target_volume"]) == ("vol", "5000")  # details
        assert "details" not in fields
        code, out, _ = await tradebus(capsys, "bots", "status", "bob-vol", "--json", *url)
        status = json.loads(out)
        assert status["bot"] == "bob-vol" and status["details"]["target_volume"] == "5000"
        run_before = status["run"]

        # the lifecycle verbs, each confirmed by the host's answer and by status
        async def verb(*args: str) -> str:
            code, out, err = await tradebus(capsys, "bots", *args, *url)
            assert code == 0, out + err
            return out.strip()

        async def state(bot: str) -> str:
            code, out, _ = await tradebus(capsys, "bots", "status", bot, "--json", *url)
            assert code == 0, out
            return json.loads(out)["state"]

        assert (await verb("pause", "alice-btc")).startswith("alice-btc: paused (state paused,")
        assert await state("alice-btc") == "paused"
        assert await verb("pause", "alice-btc") == (
            f"alice-btc: was paused; unchanged (state paused, phase waiting) [host {HOST}]"
        )
        assert (await verb("resume", "alice-btc")).startswith("alice-btc: running (state running,")
        assert await state("alice-btc") == "running"
        assert (await verb("stop", "alice-btc")).startswith(
            "alice-btc: stopped (orders cancelled per cancel_on_exit) (state stopped,"
        )
        assert await state("alice-btc") == "stopped"
        assert (await verb("start", "alice-btc")).startswith("alice-btc: running (state running,")
        assert await state("alice-btc") == "running"
        assert (await verb("start", "bob-vol", "--fresh")).startswith(
            "bob-vol: started fresh (open orders cancelled, state forgotten) (state running,"
        )
        code, out, _ = await tradebus(capsys, "bots", "status", "bob-vol", "--json", *url)
        assert json.loads(out)["run"] != run_before
        code, out, _ = await tradebus(capsys, "bots", "stop", "carol-btc", "--json", *url)
        reply = json.loads(out)
        assert code == 0 and reply["ok"] is True and reply["status"]["state"] == "stopped"
        assert reply["host"] == HOST

        # an unknown bot: one clear answer, exit 1
        for args in (("pause", "nobody"), ("start", "nobody", "--fresh"), ("status", "nobody")):
            code, out, _ = await tradebus(capsys, "bots", *args, *url)
            assert (code, out.strip()) == (1, "tradebus: unknown_bot: no bot 'nobody' in KV bots")

        # the raw NATS equivalents take plain JSON without a "type" field
        raw = await nc.request(subjects.ctl("bots", "status"), b'{"bot":"alice-btc"}', timeout=3)
        body = json.loads(raw.data)
        assert [(s["bot"], s["state"]) for s in body["bots"]] == [("alice-btc", "running")]
        assert body["host"] == HOST
        raw = await nc.request(subjects.ctl("bots", "pause"), b'{"bot":"alice-btc"}', timeout=3)
        body = json.loads(raw.data)
        assert (body["ok"], body["message"], body["status"]["state"]) == (True, "paused", "paused")
        raw = await nc.request(
            subjects.ctl("bots", "start"), b'{"bot":"alice-btc","mode":"fresh"}', timeout=3
        )
        assert json.loads(raw.data)["status"]["state"] == "running"
        raw = await nc.request(subjects.ctl("bots", "resume"), b'{"bot":"nobody"}', timeout=3)
        assert json.loads(raw.data)["error"] == "unknown_bot"
        raw = await nc.request(subjects.ctl("bots", "status"), b'{"bot":', timeout=3)
        assert json.loads(raw.data)["error"] == "bad_request"

        # a changed file: every kind of change at once, each changed value old -> new
        # (a dry run first: it shows the same and writes nothing), and the host follows it
        for dry_run, done in (("--dry-run",), "would apply"), ((), "applied"):
            code, out, _ = await tradebus(capsys, "bots", "apply", "-f", str(v2), *dry_run, *url)
            assert code == 0, out
            assert {tuple(line.split()) for line in out.splitlines()[2:6]} == {
                ("alice-btc", "unchanged"),
                ("bob-vol", "changed"),
                ("carol-btc", "removed"),
                ("dave-vol", "added"),
            }
            assert out.splitlines()[6:] == [
                "bob-vol: trade_interval_seconds 5 \N{RIGHTWARDS ARROW} 9",
                f"{done} {v2}: 1 added, 1 changed, 1 removed, 1 unchanged",
            ]

        async def follows() -> bool:
            return set(await running(nc)) == {"alice-btc", "bob-vol", "dave-vol"}

        await eventually(follows, timeout=10, what="the host to follow the new file")

        # an invalid file changes nothing: exit 2, the message names the YAML path
        code, out, err = await tradebus(capsys, "bots", "apply", "-f", str(bad), *url)
        assert code == 2 and out == ""
        assert f"tradebus bots: {bad}: invalid bot file (1 error):" in err
        assert "users[1].strategies.btc.total_quote: must be > 0" in err
        code, out, _ = await tradebus(capsys, "bots", "apply", "-f", str(v2), "--json", *url)
        assert json.loads(out)["unchanged"] == ["alice-btc", "bob-vol", "dave-vol"]

    # no host answers: exit 1, said plainly; no NATS at all: the same
    code, out, _ = await tradebus(capsys, "bots", "pause", "alice-btc", *url)
    assert (code, out.strip()) == (1, "tradebus: no strategy host answered pause for 'alice-btc'")
    code, out, _ = await tradebus(capsys, "bots", "list", "--nats-url", "nats://127.0.0.1:1")
    assert code == 1 and out.startswith("tradebus: cannot reach NATS at nats://127.0.0.1:1")


@pytest.fixture
async def execution(
    nats_url: str, database_url: str, nc: NATS, tmp_path: Path
) -> AsyncIterator[None]:
    settings = execution_settings(nats_url, database_url, tmp_path, ACCOUNTS)
    async with execution_service(nc, settings):
        yield


@pytest.mark.usefixtures("execution")
async def test_intent_place_and_cancel(
    nats_url: str, nc: NATS, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ("--nats-url", nats_url)
    alice = ("--user", "alice", "--account", "alice-paper")
    place = ("intent", "place", *alice, "--symbol", "BTCUSDT", "--side", "buy")
    sent: list[tuple[str, bytes]] = []  # what the CLI publishes, as any subscriber sees it

    async def on_intent(msg: Msg) -> None:
        sent.append((msg.subject, msg.data))

    await nc.subscribe(subjects.INTENT_ALL, cb=on_intent)
    await nc.flush()

    # a limit buy far below the market rests on the paper venue
    code, out, err = await tradebus(
        capsys, *place, "--qty", "0.01", "--price", "1000", "--id", "m-1", *url
    )
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0] == "sent m-1"
    assert lines[1].split()[0] == "OrderAccepted" and len(lines) == 2

    # the same id again: JetStream's de-duplication tells
    code, out, _ = await tradebus(
        capsys, *place, "--qty", "0.01", "--price", "1000", "--id", "m-1", *url
    )
    assert (code, out.strip()) == (
        1,
        "tradebus: intent id 'm-1' was already used; pick a new --id",
    )

    # cancel it by its intent id; a second cancel is refused
    cancel = ("intent", "cancel", *alice, "--target", "m-1")
    code, out, err = await tradebus(capsys, *cancel, "--id", "x-1", *url)
    assert (code, out.splitlines()) == (0, ["sent x-1", "  OrderCanceled m-1 canceled"]), err
    code, out, _ = await tradebus(capsys, *cancel, "--id", "x-2", *url)
    assert code == 1
    assert out.startswith("tradebus: sent x-2\n  CancelRejected not_open")
    code, out, _ = await tradebus(capsys, *cancel, "--id", "x-3", "--json", *url)
    answer = json.loads(out)  # refused in JSON mode: still JSON, still exit 1
    assert code == 1 and [(e["type"], e["reason"]) for e in answer["events"]] == [
        ("CancelRejected", "not_open")
    ]

    # another user's account is not yours
    code, out, _ = await tradebus(
        capsys,
        "intent",
        "place",
        "--user",
        "alice",
        "--account",
        "bob-paper",
        "--symbol",
        "BTCUSDT",
        "--side",
        "buy",
        "--qty",
        "0.01",
        "--price",
        "1000",
        *url,
    )
    assert code == 1
    assert "OrderRejected not_owner" in out and "bob-paper" in out

    # --json: the intent and every answer, tagged with their types
    code, out, _ = await tradebus(
        capsys, *place, "--qty", "0.02", "--price", "900", "--id", "m-2", "--json", *url
    )
    answer = json.loads(out)
    assert code == 0 and answer["intent"]["type"] == "PlaceOrder"
    assert answer["intent"]["intent_id"] == "m-2" and answer["intent"]["price"] == "900"
    assert [e["type"] for e in answer["events"]] == ["OrderAccepted"]

    # cancel --all cancels every open manual order of the account
    code, out, _ = await tradebus(
        capsys, "intent", "cancel", *alice, "--all", "--id", "x-all", "--wait", "2", *url
    )
    assert (code, out.splitlines()) == (0, ["sent x-all", "  OrderCanceled m-2 canceled"])

    # bad input: exit 2 before anything is sent
    code, _, err = await tradebus(capsys, *place, "--qty", "lots", "--price", "1000", *url)
    assert code == 2 and "argument --qty: 'lots' is not a number" in err

    # what the CLI sent is plain JSON on the bus, decodable without our types
    subject, data = sent[0]
    assert subject == "intent.alice.manual"
    assert msgspec.json.decode(data)["intent_id"] == "m-1"
