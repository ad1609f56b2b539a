"""Keys given through ``api_key_env``/``secret_env`` are in execution's environment alone.

The stack is started the way ``tradebus demo`` starts it (:class:`Demo.start
<tradebus.cli.demo.Demo>`: nats-server in operator mode, the migrations, then
the four services as real processes, each with its own NATS credentials), with the demo's
accounts plus a live Backpack account whose keys come from two variables of
this process. Its venue is a closed local port, so execution keeps running
with the account ``connecting``. Then ``/proc/<pid>/environ`` of every
service process is read: the key values are in execution's only, a variable
that is not allow-listed reaches none, and each process has its own settings
and nothing else.
"""

from __future__ import annotations

import base64
import os
import secrets
import socket
import time
from pathlib import Path

import pytest

from tradebus.cli.demo import Demo, DemoOptions
from tradebus.cli.processes import BASE_ENV, BASE_ENV_PREFIXES
from tradebus.cli.stack import LocalStack
from tradebus.natsauth.identities import people_of

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("execution", "reconciler", "strategy", "marketdata")
KEY_VAR, SECRET_VAR = "BOB_BACKPACK_API_KEY", "BOB_BACKPACK_SECRET"
DECOY_VAR = "SOME_OTHER_SERVICE_TOKEN"


def live_account(closed_port: int) -> str:
    """Bob's live Backpack account (bob is a person of the demo, with a NATS account): its
    venue is a closed local port, its keys come from variables."""
    return f"""
  - id: bob-backpack
    user: bob
    venue: backpack
    market_data: backpack
    api_key_env: {KEY_VAR}
    secret_env: {SECRET_VAR}
    api_url: http://127.0.0.1:{closed_port}
    ws_url: ws://127.0.0.1:{closed_port}
    timeout_seconds: 2
"""


def environ_of(pid: int) -> dict[str, str]:
    """The environment process ``pid`` was started with (``/proc/<pid>/environ``).

    Right after ``exec`` the kernel may show it empty for a moment (the new
    program's stack is not set up yet), so an empty one is read again.
    """
    deadline = time.monotonic() + 5
    while not (raw := Path(f"/proc/{pid}/environ").read_bytes()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return dict(item.decode().partition("=")[::2] for item in raw.split(b"\0") if item)


@pytest.mark.timeout(90)
async def test_keys_reach_execution_alone(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api_key = f"bob-api-key-{secrets.token_hex(16)}"
    secret = base64.b64encode(os.urandom(32)).decode()  # an ed25519 seed, as Backpack's are
    decoy = f"decoy-{secrets.token_hex(16)}"
    monkeypatch.setenv(KEY_VAR, api_key)
    monkeypatch.setenv(SECRET_VAR, secret)
    monkeypatch.setenv(DECOY_VAR, decoy)
    # a port bound but not listening: connections are refused, and no server of the test
    # can be given it meanwhile (a free port could be, and would answer the venue's calls)
    closed_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    closed_socket.bind(("127.0.0.1", 0))
    closed = closed_socket.getsockname()[1]
    accounts = tmp_path / "accounts.yaml"
    demo_accounts = (REPO / "deploy" / "config" / "accounts.yaml").read_text()
    accounts.write_text(demo_accounts.rstrip("\n") + "\n" + live_account(closed))
    opts = DemoOptions(
        data=None,
        duration=None,
        bots=REPO / "deploy" / "config" / "bots.yaml",
        accounts=accounts,
        var=tmp_path / "var",
        database_url=database_url,
        binance_ws_url=f"ws://127.0.0.1:{closed}/stream",
    )
    stack = LocalStack(
        opts.var,
        opts.nats_url,
        opts.database_url,
        say=lambda _: None,
        nats_auth=True,
        people=people_of(accounts),
    )
    try:
        await Demo(opts, stack).start(["BTCUSDT", "ETHUSDT"])
        stack.check_running(*SERVICES)
        environs = {name: environ_of(stack.services[name].pid or 0) for name in SERVICES}
        assert stack.nats_server is not None and stack.nats_server.proc is not None
        server_env = environ_of(stack.nats_server.proc.pid)
        stack.check_running(*SERVICES)  # still the processes we read
    finally:
        await stack.close()
        closed_socket.close()

    holders = {
        value: sorted(name for name, env in environs.items() if value in env.values())
        for value in (api_key, secret, decoy)
    }
    assert holders == {api_key: ["execution"], secret: ["execution"], decoy: []}, holders
    # nor does the local nats-server (it gets nothing of ours at all)
    assert not {api_key, secret, decoy} & set(server_env.values())
    assert environs["execution"][KEY_VAR] == api_key
    assert environs["execution"][SECRET_VAR] == secret
    for name, env in environs.items():
        own = {KEY_VAR, SECRET_VAR} if name == "execution" else set()
        extra = [
            k
            for k in env
            if k not in BASE_ENV
            and not k.startswith((*BASE_ENV_PREFIXES, "TRADEBUS_"))
            and k not in own
        ]
        assert not extra, f"{name} inherited {extra}"
    # each service has its own NATS credentials: none is told of another's (or a key)
    assert stack.nats_auth is not None
    creds = {name: str(stack.nats_auth.creds[name]) for name in SERVICES}
    for name, env in environs.items():
        assert env["TRADEBUS_NATS_CREDS"] == creds[name]
        others = [n for n, path in creds.items() if n != name and path in env.values()]
        assert not others, f"{name} holds the NATS credentials of {others}"
        assert not any(str(stack.nats_auth.directory / "keys") in v for v in env.values())
