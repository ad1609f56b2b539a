"""The attacks of tests/security run with the attacker's own credentials.

* ``secure_nats``: a nats-server running the repository's ``deploy/nats/nats.conf``
  (its people are alice, bob, carol and dave), passwords generated for the test,
  JetStream in a temp dir. ``secure_nats.connect(user)`` connects as that user and
  records every error the server reports to it.
* :func:`running_execution`: the real execution service (``run(settings, stop)``)
  connected as the NATS user ``execution``, on the test's PostgreSQL, with an
  accounts file of the test; ready once it answers ``exec.query.balances``.
* :class:`Person`: a person's own connection, collecting their order events
  (``exec.evt.<user>.>``) with the time each arrived.

Only what every version of tradebus has is used here (the config file, the
password helpers, the service's ``run``, the bus protocol), so an attack can be
run against an older checkout to see it succeed there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS

from tests.support.services import eventually, service
from tradebus.cli.localstack import LocalNats
from tradebus.cli.natsauth import conf_users, generate_passwords, with_user
from tradebus.common import subjects
from tradebus.common.codec import decode_event
from tradebus.execution.bootstrap import run as run_execution
from tradebus.execution.settings import ExecutionSettings

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "deploy" / "nats" / "nats.conf"


@dataclass
class Conn:
    """A connection and the errors the server reported to it (lowercased)."""

    nc: NATS
    errors: list[str] = field(default_factory=list)


@dataclass
class SecureNats:
    """The running server (URL without credentials) and every user's password."""

    url: str
    passwords: dict[str, str]
    conns: list[NATS] = field(default_factory=list)

    def user_url(self, user: str) -> str:
        """``nats://<user>:<password>@...`` of this server."""
        return with_user(self.url, user, self.passwords[user])

    async def connect(self, user: str, **options: Any) -> Conn:
        """Connect as ``user`` (closed at the end of the test)."""
        conn = Conn(nc=NATS())

        async def on_error(exc: Exception) -> None:
            conn.errors.append(str(exc).lower())

        options.setdefault("allow_reconnect", False)
        if user not in ("operator", "execution", "strategy", "reconciler", "marketdata"):
            options.setdefault("inbox_prefix", f"_INBOX_{user}")  # any version's conf allows it
        conn.nc = await nats.connect(self.user_url(user), error_cb=on_error, **options)
        self.conns.append(conn.nc)
        return conn


@pytest.fixture
async def secure_nats(tmp_path: Path) -> AsyncIterator[SecureNats]:
    passwords, env = generate_passwords(conf_users(CONF))
    server = LocalNats(tmp_path / "nats", CONF, env)
    secure = SecureNats(server.start(), passwords)
    yield secure
    for nc in secure.conns:
        if not nc.is_closed:
            await nc.close()
    server.stop()


@pytest.fixture
def secure_nats_sync(tmp_path: Path) -> Iterator[SecureNats]:
    """The same server for synchronous tests."""
    passwords, env = generate_passwords(conf_users(CONF))
    server = LocalNats(tmp_path / "nats", CONF, env)
    yield SecureNats(server.start(), passwords)
    server.stop()


async def execution_answers(nc: NATS) -> bool:
    """True once execution answers a balances query (its intake starts right after)."""
    try:
        await nc.request(subjects.exec_query("balances"), b'{"type":"BalancesQuery"}', timeout=1)
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
        return False
    await asyncio.sleep(0.3)  # the intake's consumers are made after the responder
    return True


@asynccontextmanager
async def running_execution(
    secure: SecureNats,
    database_url: str,
    tmp_path: Path,
    accounts: str,
    **settings: Any,
) -> AsyncIterator[asyncio.Task[int]]:
    """The execution service as NATS user ``execution`` with the accounts file ``accounts``
    (YAML text) and any other ``settings``; stopped (exit status 0) at the end."""
    path = tmp_path / "accounts.yaml"
    path.write_text(accounts)
    config = ExecutionSettings(
        nats_url=secure.user_url("execution"),
        database_url=database_url,
        accounts_file=str(path),
        metrics_port=0,
        **settings,
    )
    operator = await secure.connect("operator")
    async with service(
        run_execution, config, lambda: execution_answers(operator.nc), timeout=30
    ) as task:
        yield task


class Person:
    """A person's own connection: publishes as them, collects their order events.

    ``events`` holds ``(arrival time (s, monotonic), event)`` in arrival order.
    """

    def __init__(self, user: str, conn: Conn) -> None:
        self.user = user
        self.conn = conn
        self.events: list[tuple[float, Any]] = []

    @classmethod
    async def join(cls, secure: SecureNats, user: str) -> Person:
        """Connect as ``user`` and start collecting their events."""
        person = cls(user, await secure.connect(user))
        probe = f"exec.evt.{user}.{PROBE_SOURCE}"
        heard = asyncio.Event()

        async def collect(msg: Any) -> None:
            if msg.subject == probe:
                heard.set()
                return
            person.events.append((time.monotonic(), decode_event(msg.data)))

        await person.conn.nc.subscribe(f"exec.evt.{user}.>", cb=collect)
        await person.conn.nc.flush()
        await import_ready(secure, probe, heard)
        return person

    def answers(self, intent_id: str) -> list[Any]:
        """The events naming ``intent_id``."""
        return [e for _, e in self.events if getattr(e, "intent_id", None) == intent_id]

    def kinds(self, intent_id: str) -> list[str]:
        """The type names of the events naming ``intent_id``."""
        return [type(e).__name__ for e in self.answers(intent_id)]

    async def wait_answer(self, intent_id: str, timeout: float = 10.0) -> Any:
        """The first event naming ``intent_id`` (fails the test after ``timeout`` s)."""
        await eventually(
            lambda: bool(self.answers(intent_id)),
            timeout,
            f"an answer to {intent_id}",
            lambda: f"{len(self.events)} events of {self.user}",
        )
        return self.answers(intent_id)[0]


PROBE_SOURCE = "subscription-probe"
"""Source token of the messages that check a person's subscription reaches them."""


async def import_ready(secure: SecureNats, subject: str, heard: asyncio.Event) -> None:
    """Publish on ``subject`` in the system account until a person's subscription hears it.

    A subscription in a person's account receives the system account's messages
    through a stream import, whose interest nats-server sets up a moment after the
    client's SUB is flushed (a message published at once is lost about 1 time in 25).
    """
    operator = await secure.connect("operator")
    for _ in range(200):
        await operator.nc.publish(subject, b"{}")
        try:
            await asyncio.wait_for(heard.wait(), 0.05)
            return
        except TimeoutError:
            continue
    raise AssertionError(f"{subject} never reached its subscriber")


def place(
    intent_id: str,
    account: str,
    price: str = "20000",
    qty: str = "0.001",
    side: str = "buy",
    **extra: Any,
) -> bytes:
    """A limit order intent as a person types it (JSON)."""
    import json

    body = {
        "type": "PlaceOrder",
        "intent_id": intent_id,
        "account": account,
        "symbol": "BTCUSDT",
        "side": side,
        "qty": qty,
        "price": price,
        **extra,
    }
    return json.dumps(body).encode()


PAPER_ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "1000000000", BTC: "10"}}
  - {id: bob-paper, user: bob, balances: {USDT: "1000000000", BTC: "10"}}
"""
"""Two people's paper accounts with money for any test order."""
