"""The venues an account can be on and the credentials each requires (the account form)."""

from __future__ import annotations

import ccxt

from tests.gateway.conftest import Gateway


async def test_each_venue_names_the_credentials_ccxt_requires(gateway: Gateway) -> None:
    assert (await gateway.client().get("/api/v1/venues")).status_code == 401
    assert (await gateway.client().get("/api/v1/venues/okx")).status_code == 401

    alice = await gateway.person("alice")
    venues = (await alice.get("/api/v1/venues")).json()["venues"]
    assert venues[0] == "paper" and venues[1:] == list(ccxt.exchanges)
    assert "backpack" in venues

    async def needs(venue: str) -> list[str]:
        answer = await alice.get(f"/api/v1/venues/{venue}")
        assert answer.status_code == 200, answer.text
        return answer.json()["credentials"]

    assert await needs("paper") == []
    assert await needs("backpack") == ["apiKey", "secret"]
    assert await needs("okx") == ["apiKey", "secret", "password"]  # OKX's passphrase

    unknown = await alice.get("/api/v1/venues/nowhere")
    assert unknown.status_code == 404 and "nowhere" in unknown.text
    bad = await alice.get("/api/v1/venues/no.such")
    assert bad.status_code == 400, bad.text
