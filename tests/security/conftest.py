"""The attacks of tests/security run with the attacker's own credentials.

* ``secure_nats`` (tests/conftest.py, :mod:`tests.support.secure_nats`): a
  nats-server in operator mode with fresh identities; its people (alice, bob,
  carol, dave) each have a NATS account of their own. ``secure_nats.connect(user)``
  connects with that user's ``.creds`` and records every error the server
  reports to it.
* :func:`running_execution`: the real execution service (``run(settings, stop)``)
  connected with the credentials of the NATS user ``execution``, on the test's
  PostgreSQL, with an accounts file of the test; ready once it answers
  ``exec.query.balances``.
* :class:`Person`: a person's own connection, collecting their order events
  (``exec.evt.<user>.>``) with the time each arrived.

Only the bus protocol, the service's ``run`` and the NATS identities are used
here, so an attack can be run against another checkout to compare.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NATS

from tests.support.secure_nats import Conn, SecureNats
from tests.support.services import eventually, service
from tradebus.common import subjects
from tradebus.common.codec import decode_event
from tradebus.execution.bootstrap import run as run_execution
from tradebus.execution.settings import ExecutionSettings

__all__ = ["Conn", "SecureNats"]


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
        nats_url=secure.url,
        nats_creds=str(secure.creds("execution")),
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
