"""``GET /api/v1/audit``: admins read the audit log page by page, filtered; nobody else does.

The gateway runs for real (its audit sink included): actions made through the
API reach the table through ``audit.gateway`` and the stream ``AUDIT``.
Other rows are written straight to the table (:class:`AuditLog`) so that
the pages can be compared with what was written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from tests.gateway.conftest import ADMIN, Gateway, Session
from tests.support.services import eventually
from tradebus.common.messages import AuditEvent
from tradebus.ledger.audit import AuditLog
from tradebus.ledger.pool import create_pool

S = 1_000_000_000
BASE = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * S  # 2026-01-01T00:00:00Z


def seeded(n: int) -> AuditEvent:
    """Made-up event ``n``: one per second from ``BASE``, targets ``seed:<bot|account>``."""
    users = ["alice", "bob", None]
    return AuditEvent(
        event_id=f"seed-{n}",
        ts_event=BASE + n * S,
        actor="ops" if n % 4 == 0 else "alice",
        source="cli",
        action=["bot.pause", "bot.resume", "killswitch.engage"][n % 3],
        target=f"seed:bot:b{n % 3}" if n % 2 else f"seed:account:a{n % 2}",
        user=users[n % 3],  # type: ignore[arg-type]
        before={"n": n, "amount": "1.50"},
        after={"n": n + 1} if n % 5 else None,
        details={"why": "test"},
    )


EVENTS = [seeded(n) for n in range(25)]


async def seed(gateway: Gateway) -> None:
    pool = await create_pool(gateway.database_url)
    try:
        assert await AuditLog(pool).write(EVENTS) == len(EVENTS)
    finally:
        await pool.close()


async def walk(session: Session, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every row the filters select, page by page (each page checked for its size)."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        answer = await session.get("/api/v1/audit", params=query)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert len(page["items"]) == limit


def numbers(items: list[dict[str, Any]]) -> list[int]:
    return [item["before"]["n"] for item in items]


def expected(keep: Any) -> list[int]:
    """Numbers of the seeded events ``keep`` selects, newest first."""
    return [e.before["n"] for e in reversed(EVENTS) if keep(e)]  # type: ignore[index]


async def test_admins_page_through_the_log_with_filters(gateway: Gateway) -> None:
    await seed(gateway)
    admin = gateway.admin
    assert admin is not None
    seeds = {"target": "seed:"}

    everything = expected(lambda e: True)
    for limit in (1, 4, 25, 1000):
        assert numbers(await walk(admin, limit, **seeds)) == everything

    # a row comes back whole: times in ns, JSON values as written (money as strings)
    (first,) = (await admin.get("/api/v1/audit", params={**seeds, "limit": 1})).json()["items"]
    assert first["event_id"] == "seed-24" and first["ts"] == BASE + 24 * S
    assert (first["actor"], first["source"], first["action"]) == ("ops", "cli", "bot.pause")
    assert (first["target"], first["user"]) == ("seed:account:a0", "alice")
    assert first["before"] == {"n": 24, "amount": "1.50"}
    assert (first["after"], first["details"]) == ({"n": 25}, {"why": "test"})

    # filters, alone and together
    assert numbers(await walk(admin, 3, **seeds, actor="ops")) == expected(
        lambda e: e.actor == "ops"
    )
    assert numbers(await walk(admin, 3, target="seed:bot:")) == expected(
        lambda e: e.target.startswith("seed:bot:")
    )
    assert numbers(await walk(admin, 3, target="seed:bot:b1")) == expected(
        lambda e: e.target == "seed:bot:b1"
    )
    assert numbers(await walk(admin, 3, **seeds, action="bot.")) == expected(
        lambda e: e.action.startswith("bot.")
    )
    assert numbers(await walk(admin, 2, **seeds, user="bob", action="bot.resume")) == expected(
        lambda e: e.user == "bob" and e.action == "bot.resume"
    )
    assert await walk(admin, 2, user="nobody") == []
    # since/until in ns, in ISO-8601 with a zone, without one (UTC): the same rows
    in_range = expected(lambda e: BASE + 5 * S <= e.ts_event < BASE + 12 * S)
    assert len(in_range) == 7
    for since, until in (
        (str(BASE + 5 * S), str(BASE + 12 * S)),
        ("2026-01-01T00:00:05Z", "2026-01-01T01:00:12+01:00"),
        ("2026-01-01T00:00:05", "2026-01-01 00:00:12.000000"),
    ):
        rows = await walk(admin, 2, **seeds, since=since, until=until)
        assert numbers(rows) == in_range, (since, until)
    assert await walk(admin, 5, **seeds, since="2026-01-02") == []

    # a cursor continues only the listing it came from; bad values name their parameter
    page = (await admin.get("/api/v1/audit", params={**seeds, "limit": 2})).json()
    cursor = page["next_cursor"]
    assert cursor
    for params, field in (
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": str(BASE + S), "until": str(BASE)}, "since"),
        ({"since": str(2**70)}, "since"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": cursor[:-4]}, "cursor"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"actor": ""}, "actor"),
        ({"target": "a\x00b"}, "target"),
        ({"action": "x" * 300}, "action"),
    ):
        answer = await admin.get("/api/v1/audit", params=params)
        assert answer.status_code == 400, (params, answer.text)
        body = answer.json()
        assert body["error"] == "invalid_request" and body["field"] == field, (params, body)
        assert "Traceback" not in answer.text


async def test_only_admins_read_it(gateway: Gateway) -> None:
    await seed(gateway)
    alice = await gateway.person("alice")
    answer = await alice.get("/api/v1/audit")
    assert answer.status_code == 403 and answer.json()["error"] == "forbidden"
    # not even their own rows, nor through a filter naming themselves
    answer = await alice.get("/api/v1/audit", params={"user": "alice"})
    assert answer.status_code == 403 and "seed" not in answer.text
    anonymous = await gateway.client().get("/api/v1/audit")
    assert anonymous.status_code == 401
    forged = await gateway.client(headers={"Authorization": "Bearer x.y.z"}).get("/api/v1/audit")
    assert forged.status_code == 401
    # an admin made by another admin reads it; demoted, they no longer do
    admin = gateway.admin
    assert admin is not None
    made = await admin.post(
        "/api/v1/users", json={"id": "dora", "password": "dora-password-123", "role": "admin"}
    )
    assert made.status_code == 201, made.text
    dora = await gateway.sign_in("dora", "dora-password-123")
    assert (await dora.get("/api/v1/audit")).status_code == 200
    demoted = await admin.patch("/api/v1/users/dora", json={"role": "user"})
    assert demoted.status_code == 200, demoted.text
    assert (await dora.get("/api/v1/audit")).status_code == 403


async def test_gateway_actions_appear_with_their_actor(gateway: Gateway) -> None:
    admin = gateway.admin
    assert admin is not None
    bob = await gateway.person("bob")
    changed = await bob.put(
        "/api/v1/me/password",
        json={"current_password": bob.password, "new_password": "bob-new-password-1"},
    )
    assert changed.status_code == 200, changed.text
    made = await admin.post("/api/v1/users", json={"id": "erin", "password": "erin-password-1"})
    assert made.status_code == 201, made.text
    disabled = await admin.patch("/api/v1/users/erin", json={"disabled": True})
    assert disabled.status_code == 200, disabled.text

    async def rows(**params: Any) -> list[dict[str, Any]]:
        return await walk(admin, 50, **params)

    async def arrived() -> bool:  # through audit.gateway, the stream and the sink
        return len(await rows(target="user:erin")) == 2

    await eventually(arrived, timeout=15, what="the gateway's events in the log")

    by_bob = await rows(actor="bob")
    assert [(r["action"], r["target"], r["user"]) for r in by_bob] == [
        ("user.password", "user:bob", "bob"),
        ("session.login", "user:bob", "bob"),
    ]
    assert all(r["source"] == "gateway" for r in by_bob)
    assert "bob-new-password-1" not in str(by_bob) and bob.password not in str(by_bob)

    erin = await rows(target="user:erin")
    assert [(r["action"], r["actor"]) for r in erin] == [
        ("user.update", ADMIN),
        ("user.create", ADMIN),
    ]
    update, create = erin
    assert create["before"] is None and create["after"]["role"] == "user"
    assert update["before"]["disabled"] is False and update["after"]["disabled"] is True
    assert "erin-password-1" not in str(erin) and "argon2" not in str(erin)
    # the admin's own sign-in is there too, theirs by actor and by user
    assert [r["action"] for r in await rows(actor=ADMIN, action="session.")] == ["session.login"]
    assert [r["action"] for r in await rows(user="erin")] == ["user.update", "user.create"]


async def test_api_errors_never_leak_a_traceback(gateway: Gateway) -> None:
    """Odd query strings are 4xx answers of the error shape, never a 500."""
    admin = gateway.admin
    assert admin is not None
    for query in ("limit=-1", "limit=1.5", "since=%00", "cursor=%FF%FE", "until=--1", "since=-"):
        answer = await admin.get(f"/api/v1/audit?{query}")
        assert 400 <= answer.status_code < 500, (query, answer.text)
        assert answer.json()["error"] == "invalid_request", query
    raw = httpx.URL(gateway.url + "/api/v1/audit", params={"actor": "a" * 257})
    answer = await admin.http.get(raw)
    assert answer.status_code == 400 and answer.json()["field"] == "actor"
