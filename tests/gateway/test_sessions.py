"""Signing in, refreshing, signing out: tokens that work, and every way they must not."""

from __future__ import annotations

import jwt

from tests.gateway.conftest import Gateway


async def test_sign_in_refresh_and_sign_out(gateway: Gateway) -> None:
    alice = await gateway.person("alice")
    me = await alice.get("/api/v1/me")
    assert me.status_code == 200 and me.json() == {"id": "alice", "role": "user"}

    # a refresh token is spent once: the next pair works, the old token does not
    first = alice.tokens["refresh_token"]
    answer = await gateway.client().post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert answer.status_code == 200, answer.text
    second = answer.json()
    assert second["refresh_token"] != first and second["user"] == {"id": "alice", "role": "user"}
    again = await gateway.client().post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert again.status_code == 401
    # ... and presenting the spent one revoked the whole sign-in: the second is dead too
    third = await gateway.client().post(
        "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert third.status_code == 401

    # log out: the refresh token of that sign-in stops working
    other = await gateway.sign_in("alice", alice.password)
    out = await other.post(
        "/api/v1/auth/logout", json={"refresh_token": other.tokens["refresh_token"]}
    )
    assert out.status_code == 200 and out.json()["revoked"] >= 1
    dead = await gateway.client().post(
        "/api/v1/auth/refresh", json={"refresh_token": other.tokens["refresh_token"]}
    )
    assert dead.status_code == 401


async def test_missing_expired_and_tampered_tokens_are_401(gateway: Gateway) -> None:
    alice = await gateway.person("alice")
    token = alice.tokens["access_token"]
    client = gateway.client()
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode(
        {**claims, "role": "admin"}, "not-the-secret-but-just-as-long-as-one", algorithm="HS256"
    )
    expired = jwt.encode(
        {**claims, "exp": claims["iat"] - 10}, gateway.settings.jwt_secret, algorithm="HS256"
    )
    refresh_as_access = alice.tokens["refresh_token"]
    for header in (
        None,
        "Bearer",
        "Basic YWxpY2U6eA==",
        f"Bearer {token[:-2]}xx",
        f"Bearer {forged}",
        f"Bearer {expired}",
        f"Bearer {refresh_as_access}",
    ):
        headers = {"Authorization": header} if header else {}
        answer = await client.get("/api/v1/me", headers=headers)
        assert answer.status_code == 401, (header, answer.text)
        assert answer.headers["www-authenticate"] == "Bearer"
        body = answer.json()
        assert body["error"] == "unauthorized" and token not in answer.text


async def test_wrong_passwords_are_refused_then_throttled(gateway: Gateway) -> None:
    await gateway.add_user("bob", "the-right-password")
    client = gateway.client()
    limit = gateway.settings.login_max_failures
    for _ in range(limit):
        answer = await client.post(
            "/api/v1/auth/login", json={"user": "bob", "password": "wrong-password"}
        )
        assert answer.status_code == 401 and answer.json()["error"] == "unauthorized"
    blocked = await client.post(
        "/api/v1/auth/login", json={"user": "bob", "password": "the-right-password"}
    )
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    # an unknown name is refused the same way as a wrong password
    unknown = await gateway.client(headers={"X-Forwarded-For": "10.0.0.9"}).post(
        "/api/v1/auth/login", json={"user": "nobody", "password": "whatever-it-is"}
    )
    assert unknown.status_code in (401, 429)


async def test_bad_bodies_are_4xx_naming_the_field(gateway: Gateway) -> None:
    client = gateway.client()
    cases = [
        (b'{"user": "a"}', "password"),
        (b'{"user": "a", "password": "b", "extra": 1}', "extra"),
        (b'{"user": 5, "password": "b"}', "user"),
    ]
    for body, field in cases:
        answer = await client.post(
            "/api/v1/auth/login", content=body, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == field, answer.text
    malformed = await client.post(
        "/api/v1/auth/login", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400 and malformed.json()["error"] == "invalid_request"
    huge = await client.post(
        "/api/v1/auth/login",
        content=b'{"user": "' + b"a" * (2 * 1024 * 1024) + b'"}',
        headers={"content-type": "application/json"},
    )
    assert huge.status_code == 413 and huge.json()["error"] == "body_too_large"
    missing = await client.get("/api/v1/no-such-thing")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
