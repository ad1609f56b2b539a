"""Live accounts at start: their venues, their bring-up, and their fill tasks.

* :func:`open_live_accounts`: a :class:`CcxtVenue` per live account (keys are
  read here), connected once: refused keys halt the account, a venue that
  does not answer leaves it ``connecting`` (its intents wait in JetStream);
* :func:`connect_later`: retries a connecting account with back-off until
  its venue answers;
* :func:`start_fill_tasks`: the account's fill poller and order stream;
  :func:`start_live_tasks` starts them, or the bring-up, of every account.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from tradebus.common.clock import LiveClock
from tradebus.common.ids import AccountId
from tradebus.common.markets import MarketCatalog
from tradebus.engine.accounts import AccountSpec
from tradebus.engine.core import ExecutionEngine
from tradebus.engine.venue import VenueRejected, VenueUnavailable
from tradebus.execution.ccxt_venue import CcxtVenue
from tradebus.execution.keys import load_keys, required_credentials
from tradebus.execution.live import FillPoller, live_venue
from tradebus.execution.order_stream import OrderStream, can_stream
from tradebus.execution.retry import Backoff
from tradebus.ledger.entries import deposit_entries
from tradebus.ledger.store import Ledger

log = logging.getLogger(__name__)


async def open_live_accounts(
    specs: list[AccountSpec], ledger: Ledger, now_ns: int, catalog: MarketCatalog
) -> tuple[dict[AccountId, CcxtVenue], dict[AccountId, str], set[AccountId]]:
    """A :class:`CcxtVenue` per live account, the accounts to halt (-> why), and the
    accounts whose venue did not answer (brought up later by :func:`connect_later`).

    Keys are read here (and only here). The venue's markets are loaded and
    its balances asked once, so a bad key halts the account at start
    (:func:`connect_live_account`).

    Raises
    ------
    ConfigError
        If a key's variable or file is missing or empty.
    """
    venues: dict[AccountId, CcxtVenue] = {}
    halted: dict[AccountId, str] = {}
    connecting: set[AccountId] = set()
    for spec in specs:
        if not spec.live:
            continue
        keys = load_keys(spec, required=required_credentials(spec.venue))
        venue = venues[spec.id] = live_venue(spec, keys, catalog)
        try:
            await connect_live_account(spec, venue, ledger, now_ns)
        except VenueUnavailable as exc:
            if exc.error.kind == "configuration":
                halted[spec.id] = exc.error.reason
            else:
                connecting.add(spec.id)
                log.warning(
                    "venue not reachable at start; its intents wait until it answers",
                    extra={"account": spec.id, "reason": exc.error.reason},
                )
        except VenueRejected as exc:  # an odd answer to markets or balances: try again later
            connecting.add(spec.id)
            log.warning(
                "venue refused the start-up requests; retrying",
                extra={"account": spec.id, "reason": exc.reason},
            )
    return venues, halted, connecting


async def connect_live_account(
    spec: AccountSpec, venue: CcxtVenue, ledger: Ledger, now_ns: int
) -> None:
    """Load the venue's markets, ask its balances, and create the ledger account if new.

    A new account's opening deposits are its ``balances`` if the file gives
    them, else what the venue holds now.

    Raises
    ------
    VenueUnavailable
        If the venue does not answer (``transient``) or refuses the keys
        (``configuration``).
    """
    await venue.start()
    held = {b.asset: b.total for b in await venue.balances()}
    opening = dict(spec.balances) if spec.balances else held
    deposits = deposit_entries(spec.id, opening, "initial")
    await ledger.ensure_account(spec.id, spec.user, spec.venue, deposits, now_ns)


async def connect_later(
    engine: ExecutionEngine,
    ledger: Ledger,
    spec: AccountSpec,
    venue: CcxtVenue,
    clock: LiveClock,
    stop: asyncio.Event,
    on_ready: Callable[[], None],
) -> None:
    """Retry :func:`connect_live_account` with back-off until the venue answers.

    Then the account takes intents (``engine.connecting`` loses it) and
    ``on_ready()`` starts its fill tasks; refused keys halt it instead.
    """
    backoff = Backoff(base=1.0, cap=60.0)
    attempt = 0
    while not stop.is_set():
        try:
            await connect_live_account(spec, venue, ledger, clock.now_ns())
        except (VenueUnavailable, VenueRejected) as exc:
            if isinstance(exc, VenueUnavailable) and exc.error.kind == "configuration":
                engine.connecting.discard(spec.id)
                await engine.halt(spec.id, exc.error.reason)
                return
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff.delay(attempt))
            continue
        engine.connecting.discard(spec.id)
        log.info("venue answered; the account trades", extra={"account": spec.id})
        on_ready()
        return


def start_fill_tasks(
    engine: ExecutionEngine,
    ledger: Ledger,
    live: dict[AccountId, CcxtVenue],
    specs: dict[AccountId, AccountSpec],
    stop: asyncio.Event,
) -> list[asyncio.Task[None]]:
    """Per live account: its fill poller, and its order stream if the exchange has one."""
    tasks = []
    for account, venue in live.items():
        spec = specs[account]
        poller = FillPoller(engine, ledger, venue, spec)
        if can_stream(spec, venue.exchange):
            stream = poller.stream = OrderStream(venue.exchange, poller, ledger, spec)
            tasks.append(asyncio.create_task(stream.run(stop), name=f"stream-{account}"))
        tasks.append(asyncio.create_task(poller.run(stop), name=f"fills-{account}"))
    return tasks


def start_live_tasks(
    engine: ExecutionEngine,
    ledger: Ledger,
    live: dict[AccountId, CcxtVenue],
    connecting: set[AccountId],
    specs: list[AccountSpec],
    clock: LiveClock,
    stop: asyncio.Event,
    at_start: Callable[[AccountSpec, CcxtVenue], None] = lambda spec, venue: None,
) -> list[asyncio.Task[None]]:
    """The fill tasks of the connected live accounts, and a :func:`connect_later` per
    account still connecting (which adds the account's fill tasks to the list once up,
    and calls ``at_start(spec, venue)``: the account's ``at_start`` options)."""
    by_id = {s.id: s for s in specs}
    ready = {a: v for a, v in live.items() if a not in connecting}
    tasks = start_fill_tasks(engine, ledger, ready, by_id, stop)
    engine.connecting.update(connecting)
    for account in sorted(connecting):

        def on_ready(account: AccountId = account) -> None:
            tasks.extend(start_fill_tasks(engine, ledger, {account: live[account]}, by_id, stop))
            at_start(by_id[account], live[account])

        job = connect_later(engine, ledger, by_id[account], live[account], clock, stop, on_ready)
        tasks.append(asyncio.create_task(job, name=f"connect-{account}"))
    return tasks
