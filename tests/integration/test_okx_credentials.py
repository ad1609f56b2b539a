"""An OKX account, which signs with a passphrase as well as a key and a secret (issue 18,
"Credentials as the venue requires").

Real NATS, PostgreSQL and the execution service, against the local OKX
(:class:`~tests.support.okx.OkxServer`, OKX's v5 authentication and refusals) with
the real ccxt client. The account with the right key, secret and passphrase
loads and reads its balances; one with a wrong passphrase and one with a wrong
secret are each halted alone with a clear alert, and none of the three
credentials shows in a log line.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.support.execution import Bus, collecting, execution_service, execution_settings
from tests.support.okx import OkxServer
from tradebus.common import subjects
from tradebus.common.bus import request
from tradebus.common.codec import decode_balances_reply, decode_exec_alert
from tradebus.common.ids import AccountId
from tradebus.common.messages import BalancesQuery, BalancesReply

ACCOUNT = """
  - id: {id}
    user: {user}
    venue: okx
    market_data: okx
    api_url: {url}
    fill_stream: false
    api_key_env: {prefix}_KEY
    secret_env: {prefix}_SECRET
    password_file: {passphrase_file}
    timeout_seconds: 3
"""


async def test_an_okx_account_needs_its_passphrase_and_a_wrong_one_halts_it_alone(
    nats_url: str,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with OkxServer() as okx:
        carol, dave, erin = (okx.add_key({"USDT": "5000"}) for _ in range(3))
        accounts = "accounts:"
        given = {
            "carol": (carol.api_key, carol.secret, carol.passphrase),
            "dave": (dave.api_key, dave.secret, "not-" + dave.passphrase),
            "erin": (erin.api_key, carol.secret, erin.passphrase),  # another key's secret
        }
        for user, (key, secret, passphrase) in given.items():
            prefix = f"TRADEBUS_TEST_OKX_{user.upper()}"
            monkeypatch.setenv(f"{prefix}_KEY", key)
            monkeypatch.setenv(f"{prefix}_SECRET", secret)
            passphrase_file = tmp_path / f"{user}_passphrase"
            passphrase_file.write_text(passphrase + "\n")
            accounts += ACCOUNT.format(
                id=f"{user}-okx",
                user=user,
                url=okx.url,
                prefix=prefix,
                passphrase_file=passphrase_file,
            )
        settings = execution_settings(nats_url, database_url, tmp_path, accounts)
        async with collecting(nats_url, Bus) as bus, execution_service(bus.nc, settings):
            js = bus.nc.jetstream()

            async def alert(user: str) -> str:
                raw = await js.get_last_msg(
                    subjects.STREAM_EXEC, subjects.exec_alert(user, f"{user}-okx")
                )
                assert raw.data is not None
                return decode_exec_alert(raw.data).reason

            assert await alert("dave") == "authentication_error"
            assert await alert("erin") == "authentication_error"
            with pytest.raises(Exception, match="no message found"):
                await alert("carol")
            query = BalancesQuery(account=AccountId("carol-okx"))
            raw = await request(bus.nc, subjects.exec_query("balances"), query)
            reply = decode_balances_reply(raw)
            assert isinstance(reply, BalancesReply), reply
            held = {str(a.account): {b.asset: b.total for b in a.balances} for a in reply.accounts}
            assert held["carol-okx"]["USDT"] == 5000
        # OKX's own refusals: the passphrase of dave's key, the signature of erin's
        assert {"50105", "50113"} <= set(okx.refusals), okx.refusals
        assert not {"50103", "50104", "50111"} & set(okx.refusals), okx.refusals
    shown = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    for key, secret, passphrase in given.values():
        for value in (key, secret, passphrase):
            assert value not in shown
    halted = [r for r in caplog.records if getattr(r, "alert", None) == "account_halted"]
    assert sorted(getattr(r, "account", "") for r in halted) == ["dave-okx", "erin-okx"]
