"""Bots through the API: every strategy created from JSON, validated as `tradebus bots apply`
validates, commanded, scoped to their owner; a real strategy host runs them."""

from __future__ import annotations

from typing import Any

from tests.gateway.world import LADDER_PARAMS, World, ladder, wait_state, world
from tradebus.common.ids import AccountId, BotId, UserId
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.strategies.registry import BotSpec, normalize_params, spec_problems

__all__ = ["world"]

BODIES: dict[str, dict[str, Any]] = {
    "ladder": ladder("alice-paper", name="btc"),
    "martingale": {
        "strategy": "martingale",
        "account": "alice-paper",
        "symbol": "BTCUSDT",
        "params": {
            "base_quote": "300",
            "safety_quote": "200",
            "max_safety_orders": 4,
            "price_deviation_pct": "0.05",
            "step_scale": "1.5",
            "volume_scale": "1.5",
            "take_profit_pct": "0.05",
            "stop_loss_pct": "1",
            "cooldown_seconds": "20",
        },
    },
    "spread": {
        "strategy": "spread",
        "account": "alice-paper",
        "params": {
            "symbol_a": "BTCUSDT",
            "symbol_b": "ETHUSDT",
            "leg_quote": "1000",
            "entry_spread_pct": "0.03",
            "adds": [{"spread_pct": "0.06", "multiplier": "1"}],
            "take_profit": {"mode": "reversion", "exit_spread_pct": "0.015"},
            "stop_loss_pct": "0.5",
        },
        "enabled": False,
    },
    "volume": {
        "strategy": "volume",
        "account": "alice-paper",
        "symbol": "ETHUSDT",
        "params": {
            "single_trade_quote": "100",
            "trade_interval_seconds": "5",
            "buy_offset_pct": "0.01",
            "sell_profit_pct": "0.02",
            "target_volume": "1200",
        },
    },
}


async def test_every_strategy_is_created_listed_changed_and_deleted(world: World) -> None:
    alice, bob, admin = world.alice, world.bob, world.admin
    ids = {}
    for strategy, body in BODIES.items():
        answer = await alice.post("/api/v1/bots", json=body)
        assert answer.status_code == 201, (strategy, answer.text)
        bot = answer.json()
        assert bot["spec"]["user"] == "alice" and bot["spec"]["managed_by"] == "api"
        assert bot["spec"]["strategy"] == strategy and bot["revision"] >= 1
        assert bot["spec"]["venue"] == "binance"  # the paper account's market data
        ids[strategy] = bot["id"]
    assert ids["ladder"] == "alice-ladder-btc" and ids["volume"] == "alice-volume"

    listed = await alice.get("/api/v1/bots")
    assert listed.status_code == 200
    assert sorted(b["id"] for b in listed.json()) == sorted(ids.values())
    await wait_state(alice, ids["ladder"], "running")
    running = {b["id"]: b["status"] for b in (await alice.get("/api/v1/bots")).json()}
    assert running[ids["ladder"]]["state"] == "running"
    assert running[ids["spread"]] is None  # disabled: no host runs it

    # bob sees none of it; the admin sees all, or one user's
    assert (await bob.get("/api/v1/bots")).json() == []
    assert (await bob.get("/api/v1/bots", params={"user": "alice"})).json() == []
    everyone = (await admin.get("/api/v1/bots")).json()
    assert {b["id"] for b in everyone} == set(ids.values())
    assert (await admin.get("/api/v1/bots", params={"user": "bob"})).json() == []
    assert (await admin.get(f"/api/v1/bots/{ids['ladder']}")).status_code == 200

    # change: new params take effect; a stale revision is refused
    bot = (await alice.get(f"/api/v1/bots/{ids['ladder']}")).json()
    params = {**LADDER_PARAMS, "order_count": 6}
    changed = await alice.put(
        f"/api/v1/bots/{ids['ladder']}", json={"params": params, "revision": bot["revision"]}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["spec"]["params"]["order_count"] == 6
    stale = await alice.put(
        f"/api/v1/bots/{ids['ladder']}", json={"enabled": False, "revision": bot["revision"]}
    )
    assert stale.status_code == 409 and stale.json()["field"] == "revision"
    bad_match = await alice.put(
        f"/api/v1/bots/{ids['ladder']}", json={"enabled": True}, headers={"If-Match": "x"}
    )
    assert bad_match.status_code == 400 and bad_match.json()["field"] == "If-Match"

    # delete: gone for everyone, its host stops it
    gone = await alice.delete(f"/api/v1/bots/{ids['volume']}")
    assert gone.status_code == 204, gone.text
    assert (await alice.get(f"/api/v1/bots/{ids['volume']}")).status_code == 404
    assert ids["volume"] not in {b["id"] for b in (await alice.get("/api/v1/bots")).json()}

    actions = [(e.action, e.target, e.actor) for e in await world.audit()]
    assert ("bot.create", f"bot:{ids['ladder']}", "alice") in actions
    assert ("bot.update", f"bot:{ids['ladder']}", "alice") in actions
    assert ("bot.delete", f"bot:{ids['volume']}", "alice") in actions


async def test_bad_bots_are_refused_with_the_same_errors_as_bots_apply(world: World) -> None:
    alice = world.alice
    catalog = MarketCatalog.load(default_markets_path())
    for params, field in (
        ({**LADDER_PARAMS, "total_quote": "0"}, "params.total_quote"),
        ({**LADDER_PARAMS, "nope": 1}, "params.nope"),
        ({**LADDER_PARAMS, "order_count": "many"}, "params.order_count"),
    ):
        body = ladder("alice-paper", params=params)
        answer = await alice.post("/api/v1/bots", json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == field, answer.text
        # the very problems `tradebus bots apply` reports for this spec
        spec = BotSpec(
            id=BotId("alice-ladder"),
            user=UserId("alice"),
            account=AccountId("alice-paper"),
            strategy="ladder",
            venue="binance",
            symbol="BTCUSDT",
            group="alice-ladder",
            params=normalize_params(params),
        )
        expected = [list(p) for p in spec_problems(spec, catalog)]
        assert expected and [[d["field"], d["message"]] for d in answer.json()["details"]] == (
            expected
        )

    unknown = await alice.post("/api/v1/bots", json={**ladder("alice-paper"), "strategy": "moon"})
    assert unknown.status_code == 400 and "strategy" in (unknown.json()["field"] or "")
    # an account that is not there: 400 naming it; someone else's: 404 naming it
    missing = await alice.post("/api/v1/bots", json=ladder("no-such-account"))
    assert missing.status_code == 400 and missing.json()["field"] == "account"
    theirs = await alice.post("/api/v1/bots", json=ladder("bob-paper"))
    assert theirs.status_code == 404 and theirs.json()["field"] == "account"
    assert "bob" not in theirs.json()["message"].replace("bob-paper", "")
    # an id must be the caller's own
    taken = await alice.post("/api/v1/bots", json=ladder("alice-paper", id="bob-mine"))
    assert taken.status_code == 400 and taken.json()["field"] == "id"
    first = await alice.post("/api/v1/bots", json=ladder("alice-paper"))
    assert first.status_code == 201, first.text
    again = await alice.post("/api/v1/bots", json=ladder("alice-paper"))
    assert again.status_code == 409 and again.json()["field"] == "id"


async def test_commands_start_pause_resume_stop_and_scope(world: World) -> None:
    alice, bob = world.alice, world.bob
    created = await alice.post("/api/v1/bots", json=ladder("alice-paper"))
    assert created.status_code == 201, created.text
    bot = created.json()["id"]
    await wait_state(alice, bot, "running")

    paused = await alice.post(f"/api/v1/bots/{bot}/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["ok"] is True and paused.json()["status"]["state"] == "paused"
    await wait_state(alice, bot, "paused")
    resumed = await alice.post(f"/api/v1/bots/{bot}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"]["state"] == "running"
    stopped = await alice.post(f"/api/v1/bots/{bot}/stop")
    assert stopped.status_code == 200 and stopped.json()["status"]["state"] == "stopped"
    await wait_state(alice, bot, "stopped")
    plain = await alice.post(f"/api/v1/bots/{bot}/start")  # no body: resume
    assert plain.status_code == 200 and plain.json()["status"]["state"] == "running", plain.text
    assert (await alice.post(f"/api/v1/bots/{bot}/stop")).status_code == 200
    await wait_state(alice, bot, "stopped")
    fresh = await alice.post(f"/api/v1/bots/{bot}/start", json={"mode": "fresh"})
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["status"]["state"] == "running"
    bad_mode = await alice.post(f"/api/v1/bots/{bot}/start", json={"mode": "sideways"})
    assert bad_mode.status_code == 400 and bad_mode.json()["field"] == "mode"

    # bob can neither see nor command it: 404 as for no bot at all, and it keeps running
    for verb in ("pause", "stop", "resume", "start"):
        answer = await bob.post(f"/api/v1/bots/{bot}/{verb}")
        assert answer.status_code == 404 and answer.json()["error"] == "not_found"
        assert "alice-paper" not in answer.text
    for answer in (
        await bob.get(f"/api/v1/bots/{bot}"),
        await bob.put(f"/api/v1/bots/{bot}", json={"enabled": False}),
        await bob.delete(f"/api/v1/bots/{bot}"),
    ):
        assert answer.status_code == 404 and "alice-paper" not in answer.text
    await wait_state(alice, bot, "running")
    # the admin may command anyone's bot
    by_admin = await world.admin.post(f"/api/v1/bots/{bot}/pause")
    assert by_admin.status_code == 200 and by_admin.json()["status"]["state"] == "paused"
