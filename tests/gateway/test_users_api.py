"""People through the API: admins create, list, change and disable users; everyone changes
their own password; the last admin cannot be lost."""

from __future__ import annotations

import httpx

from tests.gateway.conftest import ADMIN, Gateway, gateway_settings
from tests.support.metrics import free_port, scrape, value
from tests.support.services import service
from tradebus.gateway.bootstrap import run as run_gateway


async def test_admins_create_list_and_disable_users(gateway: Gateway) -> None:
    admin = gateway.admin
    assert admin is not None
    created = await admin.post(
        "/api/v1/users", json={"id": "carol", "password": "carol-password-1"}
    )
    assert created.status_code == 201, created.text
    view = created.json()
    assert (view["id"], view["role"], view["disabled"], view["created_by"]) == (
        "carol",
        "user",
        False,
        ADMIN,
    )
    assert "password" not in created.text and "argon2" not in created.text
    carol = await gateway.sign_in("carol", "carol-password-1")
    assert (await carol.get("/api/v1/me")).json() == {"id": "carol", "role": "user"}

    listed = await admin.get("/api/v1/users")
    assert [u["id"] for u in listed.json()] == ["carol", ADMIN]
    assert "argon2" not in listed.text
    assert (await admin.get("/api/v1/users/carol")).json()["id"] == "carol"
    assert (await admin.get("/api/v1/users/nobody")).status_code == 404

    # refusals name the field
    for body, status, field in (
        ({"id": "carol", "password": "another-password"}, 409, "id"),
        ({"id": "dave", "password": "short"}, 400, "password"),
        ({"id": "no.dots", "password": "long-enough-pw"}, 400, "id"),
        ({"id": "dave", "password": "long-enough-pw", "role": "king"}, 400, "role"),
    ):
        answer = await admin.post("/api/v1/users", json=body)
        assert answer.status_code == status, answer.text
        assert answer.json()["field"] == field, answer.text

    # a user is not an admin: 403 on every admin route, with nothing of anyone
    for answer in (
        await carol.get("/api/v1/users"),
        await carol.get(f"/api/v1/users/{ADMIN}"),
        await carol.post("/api/v1/users", json={"id": "eve", "password": "eve-password-1"}),
        await carol.patch("/api/v1/users/carol", json={"role": "admin"}),
    ):
        assert answer.status_code == 403 and answer.json()["error"] == "forbidden"
        assert ADMIN not in answer.text

    # disabling: the access token stops working at once, and signing in too
    disabled = await admin.patch("/api/v1/users/carol", json={"disabled": True})
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert (await carol.get("/api/v1/me")).status_code == 401
    refused = await gateway.client().post(
        "/api/v1/auth/login", json={"user": "carol", "password": "carol-password-1"}
    )
    assert refused.status_code == 401
    refresh = await gateway.client().post(
        "/api/v1/auth/refresh", json={"refresh_token": carol.tokens["refresh_token"]}
    )
    assert refresh.status_code == 401
    enabled = await admin.patch("/api/v1/users/carol", json={"disabled": False, "role": "admin"})
    assert enabled.status_code == 200, enabled.text
    assert (enabled.json()["disabled"], enabled.json()["role"]) == (False, "admin")
    carol = await gateway.sign_in("carol", "carol-password-1")
    assert (await carol.get("/api/v1/users")).status_code == 200

    bad = await admin.patch("/api/v1/users/carol", json={"disabled": "yes"})
    assert bad.status_code == 400 and bad.json()["field"] == "disabled"
    missing = await admin.patch("/api/v1/users/nobody", json={"disabled": True})
    assert missing.status_code == 404


async def test_the_last_admin_stays(gateway: Gateway) -> None:
    admin = gateway.admin
    assert admin is not None
    for body, field in (({"role": "user"}, "role"), ({"disabled": True}, "disabled")):
        answer = await admin.patch(f"/api/v1/users/{ADMIN}", json=body)
        assert answer.status_code == 409 and answer.json()["field"] == field, answer.text
    await admin.post(
        "/api/v1/users", json={"id": "second", "password": "second-password", "role": "admin"}
    )
    demoted = await admin.patch(f"/api/v1/users/{ADMIN}", json={"role": "user"})
    assert demoted.status_code == 200 and demoted.json()["role"] == "user"


async def test_changing_ones_password_signs_out_everywhere_else(gateway: Gateway) -> None:
    alice = await gateway.person("alice")
    other = await gateway.sign_in("alice", alice.password)
    wrong = await alice.put(
        "/api/v1/me/password",
        json={"current_password": "not-it-at-all", "new_password": "a-new-password"},
    )
    assert wrong.status_code == 400 and wrong.json()["field"] == "current_password"
    short = await alice.put(
        "/api/v1/me/password", json={"current_password": alice.password, "new_password": "x"}
    )
    assert short.status_code == 400 and short.json()["field"] == "new_password"
    changed = await alice.put(
        "/api/v1/me/password",
        json={"current_password": alice.password, "new_password": "a-new-password"},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["user"] == {"id": "alice", "role": "user"}
    # the other sign-in's refresh token is revoked; the new pair works
    old = await gateway.client().post(
        "/api/v1/auth/refresh", json={"refresh_token": other.tokens["refresh_token"]}
    )
    assert old.status_code == 401
    new = await gateway.client().post(
        "/api/v1/auth/refresh", json={"refresh_token": changed.json()["refresh_token"]}
    )
    assert new.status_code == 200
    old_password = await gateway.client().post(
        "/api/v1/auth/login", json={"user": "alice", "password": alice.password}
    )
    assert old_password.status_code == 401
    assert (await gateway.sign_in("alice", "a-new-password")).tokens["access_token"]


async def test_nats_credentials_need_a_configured_registrar(gateway: Gateway) -> None:
    alice = await gateway.person("alice")
    answer = await alice.get("/api/v1/me/nats-credentials")
    assert answer.status_code == 503 and answer.json()["error"] == "unavailable"
    bad = await alice.get("/api/v1/me/nats-credentials", params={"days": 0})
    assert bad.status_code == 400 and bad.json()["field"] == "days"


async def test_requests_are_counted_by_route_template(nats_url: str, database_url: str) -> None:
    port = free_port()
    settings = gateway_settings(nats_url, database_url, metrics_port=port)
    gw = Gateway(url=settings.url, settings=settings, database_url=database_url)

    async def ready() -> bool:
        try:
            return (await gw.client().get("/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    async with service(run_gateway, settings, ready):
        alice = await gw.person("alice")
        for _ in range(3):
            assert (await alice.get("/api/v1/bots/alice-nothing")).status_code == 404
        assert (await gw.client().get("/api/v1/me")).status_code == 401
        samples = scrape(port)
        for client in gw.clients:
            await client.aclose()
    route = "/api/v1/bots/{bot_id}"
    assert (
        value(samples, "tradebus_gateway_requests_total", route=route, method="GET", status="4xx")
        == 3
    )
    assert value(samples, "tradebus_gateway_sign_ins_total", result="ok") == 1
    assert value(samples, "tradebus_gateway_ready") == 1
    assert not any("alice-nothing" in str(labels) for _, labels, _ in samples)
