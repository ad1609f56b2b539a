"""Which bots this host replica runs, and their starts, resumes, moves and stops.

The supervisor watches KV ``bots`` (specs), takes and renews leases
(:mod:`tradebus.strategy.leases`), and for each bot it should run:

* **resume** when KV ``bot_state`` has a record: restore the snapshot, replay
  the bot's ``exec.evt`` events after the record's stream sequence (live
  events arriving meanwhile are buffered), then re-send the intents still
  unanswered. No fill is lost (every event after the snapshot is replayed)
  and no order is placed twice (intent ids are deterministic; JetStream and
  the ledger keep one order per id).
* **fresh** otherwise, or when asked: a new run number (the revision of the
  new record), the bot's open orders from earlier runs cancelled.

A dry-run bot (``execute_trades: false``) always starts fresh: its
simulated venue (:class:`~tradebus.strategy.dryrun.DryRun`) lives in this
host's memory; the cancel-all of a fresh start goes to its account only if
its last run was not a dry run (orders of a live run may rest there).

It also hands bots over to a replica that should run them (final snapshot,
then release), retires removed or disabled bots (cancels per
``cancel_on_exit``), applies changed parameters to a running bot (state
kept) and restarts it fresh when its market, account or strategy changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KV_DEL, KV_PURGE

from tradebus.common import subjects
from tradebus.common.codec import decode_event, encode
from tradebus.common.ids import intent_id
from tradebus.common.markets import MarketCatalog
from tradebus.common.messages import CancelAll
from tradebus.control.botstore import decode_spec
from tradebus.strategies.registry import BotSpec, build_bot
from tradebus.strategy.dryrun import DryRun, Recorder
from tradebus.strategy.host import BotRunner, Dispatcher
from tradebus.strategy.host_metrics import HostMetrics
from tradebus.strategy.kvstore import BotRecord, Buckets, decode_record
from tradebus.strategy.leases import Leases, preferred_owner
from tradebus.strategy.publisher import IntentPublisher

log = logging.getLogger(__name__)

STABLE_BEATS = 2
"""A replica must have been seen this many heartbeats before bots move to it."""
START_CONCURRENCY = 64
"""Bots claimed and started at once (each start is a few KV and stream round trips)."""


def identity(spec: BotSpec) -> tuple[object, ...]:
    """What a bot *is*: changing any of it restarts the bot fresh; params may change live.
    A dry run's settings are part of it (its simulated venue starts anew)."""
    return (
        spec.user,
        spec.account,
        spec.strategy,
        spec.venue,
        spec.symbol,
        spec.group_name,
        spec.execute_trades,
        tuple(sorted(spec.dry_run_wallet.items())),
    )


def build_runner(
    spec: BotSpec, catalog: MarketCatalog, run: int, record: Recorder, **kw: Any
) -> BotRunner:
    """A runner of ``spec`` in run ``run`` (``kw``: :class:`BotRunner`'s), with its
    simulated venue if it is a dry run (its records go to ``record``).

    Raises
    ------
    ValueError
        If the spec is invalid (:func:`~tradebus.strategies.registry.build_bot`).
    """
    runner = BotRunner(build_bot(spec, catalog, run), spec, **kw)
    if not spec.execute_trades:
        runner.dry = DryRun(spec, runner.core.ctx.all_markets(), run, record)
    return runner


class Supervisor:
    """Runs this replica's share of the bots (see module docstring).

    Parameters
    ----------
    js, buckets
        JetStream context and the KV buckets.
    dispatcher, publisher
        Where bots run and where their intents and snapshots go.
    catalog
        Markets, to build bots.
    metrics
        Host metrics.
    replica
        This replica's id.
    subscribe, unsubscribe
        Open/close the market data subscription of a ``(venue, symbol)``.
    heartbeat_seconds
        Lease renewal period: a long start of many bots renews the leases
        already held at this pace, so none expires before its bot runs.
    """

    def __init__(
        self,
        js: JetStreamContext,
        buckets: Buckets,
        dispatcher: Dispatcher,
        publisher: IntentPublisher,
        catalog: MarketCatalog,
        metrics: HostMetrics,
        replica: str,
        subscribe: Callable[[tuple[str, str]], object],
        unsubscribe: Callable[[tuple[str, str]], object],
        heartbeat_seconds: float = 2.0,
    ) -> None:
        self._js = js
        self._b = buckets
        self.dispatcher = dispatcher
        self._publisher = publisher
        self._catalog = catalog
        self._metrics = metrics
        self.replica = replica
        self._subscribe = subscribe
        self._unsubscribe = unsubscribe
        self.leases = Leases(buckets.leases, replica)
        self.specs: dict[str, BotSpec] = {}
        self.specs_ready = asyncio.Event()
        self.live: set[str] = {replica}
        self._first_seen: dict[str, int] = {}
        self.beats = 0
        self.lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self.started = asyncio.Event()
        self._broken: dict[str, BotSpec] = {}
        self._heartbeat = heartbeat_seconds
        self._last_beat = 0.0

    # ------------------------------------------------------------ assignment
    def preferred(self, bot: str) -> str | None:
        """The live replica that should run ``bot``."""
        return preferred_owner(bot, self.live)

    def _stable(self, replica: str) -> bool:
        return self.beats - self._first_seen.get(replica, self.beats) >= STABLE_BEATS

    async def watch_specs(self) -> None:
        """Follow KV ``bots`` forever; wake the reconciliation on every change."""
        watcher = await self._b.bots.watchall()
        async for entry in watcher:
            if entry is None:
                self.specs_ready.set()
                continue
            if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
                self.specs.pop(entry.key, None)
            else:
                try:
                    self.specs[entry.key] = decode_spec(entry.value)
                except msgspec.DecodeError:
                    log.error("undecodable bot spec", extra={"bot": entry.key})
                    continue
            if self.specs_ready.is_set():
                self.wake.set()

    async def beat(self) -> None:
        """Heartbeat, renew leases (dropping lost bots), refresh the live replicas."""
        self._last_beat = asyncio.get_running_loop().time()
        self.beats += 1
        await self.leases.beat()
        for bot in await self.leases.renew():
            await self._drop(bot)
        self.live = await self.leases.live_replicas()
        for replica in self.live:
            self._first_seen.setdefault(replica, self.beats)
        self._metrics.leases.set(len(self.leases.held))

    async def reconcile(self) -> None:
        """Bring this replica's bots in line with the specs and the live replicas."""
        async with self.lock:
            for bot, runner in list(self.dispatcher.runners.items()):
                spec = self.specs.get(bot)
                owner = self.preferred(bot)
                if spec is None or not spec.enabled:
                    await self._retire(bot, removed=spec is None)
                elif spec != runner.spec and self._broken.get(bot) != spec:
                    try:
                        await self._update(runner, spec)
                    except (ValueError, msgspec.DecodeError) as exc:
                        self._broken[bot] = spec  # keep running the last good spec
                        log.error("bot spec not applied", extra={"bot": bot, "error": str(exc)})
                elif owner != self.replica and owner is not None and self._stable(owner):
                    await self._hand_over(bot)
            if self.beats < STABLE_BEATS:  # let replicas starting with us show up first
                return
            due = [
                spec
                for bot, spec in sorted(self.specs.items())
                if spec.enabled
                and bot not in self.dispatcher.runners
                and self._broken.get(bot) != spec  # failed to build; wait for a corrected spec
                and self.preferred(bot) == self.replica
            ]
            for start in range(0, len(due), START_CONCURRENCY):
                chunk = due[start : start + START_CONCURRENCY]
                await asyncio.gather(*(self._claim_and_start(spec) for spec in chunk))
                if asyncio.get_running_loop().time() - self._last_beat >= self._heartbeat:
                    await self.beat()  # thousands of starts outlast a lease: renew meanwhile
            self._metrics.leases.set(len(self.leases.held))
            self.started.set()

    async def _claim_and_start(self, spec: BotSpec) -> None:
        """Take the bot's lease if free and run it here."""
        if not await self.leases.claim(spec.id):
            return
        try:
            await self.start_bot(spec)
        except (ValueError, msgspec.DecodeError) as exc:
            # a spec this host cannot run (e.g. a market missing from its
            # markets file): the others must still start
            self._broken[spec.id] = spec
            self._remove(spec.id)
            await self.leases.release(spec.id)
            log.error("bot cannot start", extra={"bot": spec.id, "error": str(exc)})

    # ------------------------------------------------------------- start/stop
    async def start_bot(self, spec: BotSpec, fresh: bool = False) -> BotRunner:
        """Run ``spec`` here (lease already held): resume it, or start it fresh."""
        try:
            entry = await self._b.state.get(spec.id)
            record, revision = decode_record(entry.value or b""), entry.revision or 0
        except (KeyNotFoundError, msgspec.DecodeError):
            record, revision = None, 0
        dry = not spec.execute_trades
        if record is None or fresh or dry or record.strategy != spec.strategy:
            was_live = record.execute_trades if record is not None else True
            cancel = (record is not None or fresh) and was_live
            return await self._start_fresh(spec, cancel_previous=cancel)
        return await self._resume(spec, record, revision)

    def _runner(self, spec: BotSpec, run: int, **kw: Any) -> BotRunner:
        return build_runner(spec, self._catalog, run, self._publisher.put_record, **kw)

    async def _start_fresh(self, spec: BotSpec, cancel_previous: bool) -> BotRunner:
        record = BotRecord(strategy=spec.strategy, run=0, execute_trades=spec.execute_trades)
        run = await self._b.state.put(spec.id, encode(record))
        info = await self._js.stream_info(subjects.STREAM_EXEC)
        runner = self._runner(spec, run, event_seq=info.state.last_seq)
        self._add(runner)
        if cancel_previous:  # orders an earlier run left open at the venue
            cancel = CancelAll(
                intent_id=intent_id(spec.id, run, 0, "cancel-all"),
                account=spec.account,
                scope="source",
            )
            self._publisher.submit(runner.subject, cancel, None)
        self.dispatcher.save(runner)
        self._metrics.resumes.labels(mode="fresh").inc()
        log.info("bot started fresh", extra={"bot": spec.id, "run": run})
        return runner

    async def _resume(self, spec: BotSpec, record: BotRecord, revision: int) -> BotRunner:
        core = build_bot(spec, self._catalog, record.run or revision)
        if record.snapshot is not None:
            core.restore(record.snapshot)
        runner = BotRunner(
            core, spec, lifecycle=record.lifecycle, event_seq=record.event_seq, catching_up=True
        )
        self._add(runner)
        replayed = 0
        seq = record.event_seq + 1
        filter_subject = subjects.exec_evt(spec.user, spec.id)
        while True:
            try:
                msg = await self._js.get_msg(
                    subjects.STREAM_EXEC, seq=seq, subject=filter_subject, next=True
                )
            except NotFoundError:
                break
            if msg.seq is None or msg.data is None:
                break
            try:
                event = decode_event(msg.data)
            except msgspec.DecodeError:
                seq = msg.seq + 1
                continue
            self.dispatcher.apply_event(runner, msg.seq, event)
            replayed += 1
            seq = msg.seq + 1
        self.dispatcher.finish_catch_up(runner)
        self._metrics.resumes.labels(mode="resume").inc()
        log.info(
            "bot resumed",
            extra={
                "bot": spec.id,
                "run": core.ctx.run,
                "from_seq": record.event_seq,
                "replayed": replayed,
                "lifecycle": record.lifecycle,
            },
        )
        return runner

    def _add(self, runner: BotRunner) -> None:
        for market in self.dispatcher.add(runner):
            self._subscribe(market)

    def _remove(self, bot: str) -> BotRunner | None:
        runner, empty = self.dispatcher.remove(bot)
        for market in empty:
            self._unsubscribe(market)
        return runner

    async def _drop(self, bot: str) -> None:
        """The lease was lost: stop running the bot at once, touching nothing."""
        self._remove(bot)
        log.warning("bot dropped: lease lost", extra={"bot": bot})

    async def _hand_over(self, bot: str) -> None:
        """Move a bot to the replica that should run it: final snapshot, then release."""
        runner = self._remove(bot)
        if runner is None:
            return
        await self._publisher.drain(5.0)
        await self._b.state.put(bot, runner.record())
        await self.leases.release(bot)
        log.info("bot handed over", extra={"bot": bot, "to": self.preferred(bot)})

    async def _retire(self, bot: str, removed: bool) -> None:
        """Stop a removed or disabled bot (cancels per ``cancel_on_exit``) and release it."""
        runner = self.dispatcher.runners.get(bot)
        if runner is None:
            return
        self.dispatcher.stop(runner, persist=False)
        self._remove(bot)
        await self._publisher.drain(5.0)
        if removed:
            with contextlib.suppress(KeyNotFoundError):
                await self._b.state.delete(bot)
        await self.leases.release(bot)
        log.info("bot retired", extra={"bot": bot, "removed": removed})

    async def _update(self, runner: BotRunner, spec: BotSpec) -> None:
        """New parameters apply live, state kept; a new identity restarts the bot fresh."""
        if identity(spec) != identity(runner.spec):
            self.dispatcher.stop(runner, persist=False)
            self._remove(runner.bot)
            await self.start_bot(spec, fresh=True)
            return
        core = build_bot(spec, self._catalog, runner.core.ctx.run)
        if [m.symbol for m in core.ctx.all_markets()] != [
            m.symbol for m in runner.core.ctx.all_markets()
        ]:
            self.dispatcher.stop(runner, persist=False)
            self._remove(runner.bot)
            await self.start_bot(spec, fresh=True)
            return
        core.restore(runner.core.snapshot())
        runner.core = core
        runner.spec = spec
        self.dispatcher.save(runner)
        log.info("bot parameters updated", extra={"bot": spec.id})

    async def restart_fresh(self, bot: str) -> BotRunner | None:
        """``ctl.bots.start`` with ``mode=fresh`` for a bot running here."""
        async with self.lock:
            runner = self.dispatcher.runners.get(bot)
            spec = self.specs.get(bot)
            if runner is None or spec is None:
                return None
            self._remove(bot)
            return await self.start_bot(spec, fresh=True)

    async def shutdown(self, stop_timeout: float) -> int:
        """Leave: hand the bots to other live replicas, or, as the last one, stop them.

        Returns the number of orders still open when giving up waiting.
        """
        async with self.lock:
            await self.beat()
            others = self.live - {self.replica}
            left = 0
            if others:
                for bot in list(self.dispatcher.runners):
                    await self._hand_over(bot)
            else:
                self.dispatcher.stop_all()
                loop = asyncio.get_running_loop()
                deadline = loop.time() + stop_timeout
                await self._publisher.drain(stop_timeout)
                while self.dispatcher.open_orders() and loop.time() < deadline:
                    await asyncio.sleep(0.2)
                left = self.dispatcher.open_orders()
            await self.leases.leave()
            return left

    def save_dirty(self) -> None:
        """Queue a snapshot of every bot whose state changed since its last one."""
        for runner in self.dispatcher.runners.values():
            if runner.dirty and not runner.catching_up:
                self.dispatcher.save(runner)

    async def wait_next_beat(self, seconds: float) -> None:
        """Sleep until the next heartbeat or an earlier wake-up (a spec changed)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)
        self.wake.clear()
