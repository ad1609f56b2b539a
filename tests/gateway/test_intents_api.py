"""Manual intents through the API: published as the person's own, checked by execution as
over NATS, only on the caller's accounts."""

from __future__ import annotations

from tests.gateway.world import World, world
from tradebus.common.messages import OrderAccepted, OrderRejected

__all__ = ["world"]


def place(account: str, **extra: object) -> dict[str, object]:
    return {
        "type": "place",
        "account": account,
        "symbol": "BTCUSDT",
        "side": "buy",
        "qty": "0.001",
        "price": "50000",
        **extra,
    }


async def test_place_and_cancel_on_the_callers_account(world: World) -> None:
    alice = world.alice
    sent = await alice.post(
        "/api/v1/intents", json=place("alice-paper", intent_id="m-1"), params={"wait": 5}
    )
    assert sent.status_code == 202, sent.text
    body = sent.json()
    assert body["intent_id"] == "m-1" and body["answered"] is True
    assert body["events"][0]["type"] == "OrderAccepted", body
    assert world.bus.of(OrderAccepted, "m-1")[0].user == "alice"

    # the same id again is refused by the bus's duplicate window
    again = await alice.post("/api/v1/intents", json=place("alice-paper", intent_id="m-1"))
    assert again.status_code == 409 and again.json()["field"] == "intent_id"

    # execution's checks apply as over NATS: a price far from its venue's is refused by risk
    # or accepted; either way the answer is execution's, not the gateway's
    canceled = await alice.post(
        "/api/v1/intents",
        json={"type": "cancel", "account": "alice-paper", "target_intent_id": "m-1"},
        params={"wait": 5},
    )
    assert canceled.status_code == 202, canceled.text
    assert [e["type"] for e in canceled.json()["events"]][-1] == "OrderCanceled"
    sell_too_much = await alice.post(
        "/api/v1/intents",
        json=place("alice-paper", side="sell", qty="5", intent_id="m-2"),
        params={"wait": 5},
    )
    assert sell_too_much.status_code == 202, sell_too_much.text
    assert sell_too_much.json()["events"][0]["type"] == "OrderRejected"
    assert world.bus.of(OrderRejected, "m-2")

    actions = [(e.action, e.target, e.actor) for e in await world.audit()]
    assert ("intent.place", "account:alice-paper", "alice") in actions
    assert ("intent.cancel", "account:alice-paper", "alice") in actions


async def test_other_accounts_and_bad_intents_are_refused(world: World) -> None:
    alice = world.alice
    theirs = await alice.post("/api/v1/intents", json=place("bob-paper"))
    assert theirs.status_code == 404 and theirs.json()["field"] == "account"
    missing = await alice.post("/api/v1/intents", json=place("nobody-paper"))
    assert missing.status_code == 400 and missing.json()["field"] == "account"
    for body, field in (
        (place("alice-paper", price=None), "price"),
        (place("alice-paper", qty="-1"), "qty"),
        (place("alice-paper", side="up"), "side"),
        (place("alice-paper", extra=1), "extra"),
        ({**place("alice-paper"), "type": "teleport"}, "type"),
    ):
        answer = await alice.post("/api/v1/intents", json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["field"] == field, answer.text
    too_long = await alice.post("/api/v1/intents", json=place("alice-paper"), params={"wait": 99})
    assert too_long.status_code == 400 and too_long.json()["field"] == "wait"
    # nothing reached execution from these refusals
    assert not world.bus.of(OrderAccepted) and not world.bus.of(OrderRejected)
