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
from tradebus.common.bus import kv_live_entries
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
from tradebus.strategy.leases import Lease, LeaseLost, Leases, claimed_by, preferred_owner
from tradebus.strategy.publisher import IntentPublisher

log = logging.getLogger(__name__)

STABLE_BEATS = 2
"""A replica must have been seen this many heartbeats before bots move to it."""
START_CONCURRENCY = 256
"""Bots started at once (a fresh start is one KV put, a resume a few stream reads): the
round trips of a chunk overlap (64 at a time, a loaded bench machine started 10,000 bots
in 17 s, ~110 ms a chunk waiting on the server)."""
HANDOVER_SECONDS = 5.0
"""How long a hand-over waits for the final snapshots before trying again next beat."""


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
        Lease renewal period: a long start of many bots renews the replica's lease
        at this pace.
    lease_seconds
        The lease time (TTL of KV ``leases``): a replica that could not renew its
        lease for this long drops every bot (another may already run them).
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
        lease_seconds: float = 10.0,
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
        self.others: dict[str, Lease] = {}
        """The other live replicas' leases, read after our lease was last published."""
        self._first_seen: dict[str, int] = {}
        self.beats = 0
        self.lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self.started = asyncio.Event()
        self._broken: dict[str, BotSpec] = {}
        self._heartbeat = heartbeat_seconds
        self._lease_seconds = lease_seconds
        self._last_beat = 0.0
        self._next_view: set[str] | None = None
        """A view whose hand-over is not finished yet (not published): bots it gives away
        are not started again meanwhile."""
        self._renewed_at = 0.0
        """Loop time just before our last successful renewal (the server's TTL counts
        from later)."""

    # ------------------------------------------------------------ assignment
    def preferred(self, bot: str) -> str | None:
        """The live replica that should run ``bot`` (over the replicas this one sees)."""
        return preferred_owner(bot, self.live)

    def claims(self, bot: str) -> bool:
        """Whether our published lease claims ``bot`` (we may run it only then) and a view
        being moved to keeps it here."""
        if not self.leases.held or preferred_owner(bot, self.leases.view) != self.replica:
            return False
        return self._next_view is None or preferred_owner(bot, self._next_view) == self.replica

    def _stable(self, replica: str) -> bool:
        return self.beats - self._first_seen.get(replica, self.beats) >= STABLE_BEATS

    def _target_view(self) -> set[str]:
        """The replicas to assign over: the live ones; one that appeared after start-up
        joins once seen for :data:`STABLE_BEATS` heartbeats (a replica that flaps
        moves no bots); one whose lease is gone leaves at once."""
        if self.beats <= STABLE_BEATS:
            return set(self.live)
        current = set(self.leases.view)
        return {r for r in self.live if r in current or self._stable(r)} | {self.replica}

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
        """Renew (or take) our lease, read the live replicas' leases, and move to a new view
        when the replica set changed: the bots it gives to others are stopped and their
        final snapshots stored first, only then is the view published (their new owners
        wait for that), and the leases are read again after it."""
        loop = asyncio.get_running_loop()
        self._last_beat = loop.time()
        self.beats += 1
        if not await self._keep_lease():
            self.live, self.others = {self.replica}, {}
            return
        await self._read_leases()
        view = self._target_view()
        self._next_view = None
        if view != set(self.leases.view):
            self._next_view = view
            moving = [
                bot for bot in self.dispatcher.runners if preferred_owner(bot, view) != self.replica
            ]
            if await self._hand_over(moving):
                renewing = loop.time()
                await self.leases.renew(view)
                self._renewed_at = renewing
                self._next_view = None
                log.info(
                    "replica view published",
                    extra={"replica": self.replica, "view": sorted(view), "moved": len(moving)},
                )
                await self._read_leases()
        self._metrics.leases.set(len(self.dispatcher.runners) if self.leases.held else 0)

    async def _read_leases(self) -> None:
        leases = await self.leases.read()
        self.others = {r: lease for r, lease in leases.items() if r != self.replica}
        self.live = set(self.others) | {self.replica}
        for replica in self.live:
            self._first_seen.setdefault(replica, self.beats)

    async def _keep_lease(self) -> bool:
        """Renew our lease, or take it when we hold none; False while we hold none.

        A lost lease (expired: another replica may run our bots by now), or one not
        renewed for a lease time (NATS unreachable), drops every bot at once."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self.leases.held:
            try:
                await self.leases.renew()
                self._renewed_at = max(self._renewed_at, now)
                return True
            except LeaseLost:
                self._drop_all("lease lost")
            except Exception:
                if loop.time() - self._renewed_at >= self._lease_seconds - self._heartbeat:
                    self._drop_all("lease not renewed for a lease time")
                    self.leases.revision = None  # taken anew (create) once it has expired
                raise
        if await self.leases.acquire({self.replica}):
            self._renewed_at = now
            log.info("replica lease taken", extra={"replica": self.replica})
            return True
        log.warning(
            "replica lease still held by an earlier process of this id; waiting for it to expire",
            extra={"replica": self.replica},
        )
        return False

    async def keep_alive(self) -> None:
        """Renew our lease every heartbeat whatever the supervision round is doing (a long
        start, a slow hand-over), forever; a lost lease drops every bot at once (the next
        round takes the lease anew). Renewals and the round's own are one at a time."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._heartbeat / 2)
            if not self.leases.held or loop.time() - self._renewed_at < self._heartbeat:
                continue
            now = loop.time()
            try:
                await self.leases.renew()
                self._renewed_at = max(self._renewed_at, now)
            except LeaseLost:
                self._drop_all("lease lost")
            except Exception as exc:  # NATS hiccup: the round sees it too, and decides
                log.warning("lease renewal failed", extra={"error": repr(exc)})

    def _drop_all(self, why: str) -> None:
        """Stop running every bot at once, touching nothing (its new owner resumes it)."""
        bots = list(self.dispatcher.runners)
        for bot in bots:
            self._remove(bot)
        if bots:
            log.warning("bots dropped", extra={"bots": len(bots), "reason": why})

    async def reconcile(self) -> None:
        """Bring this replica's bots in line with the specs and its published lease."""
        async with self.lock:
            for bot, runner in list(self.dispatcher.runners.items()):
                spec = self.specs.get(bot)
                if spec is None or not spec.enabled:
                    await self._retire(bot, removed=spec is None)
                elif (
                    spec is not runner.spec  # the same object: unchanged (cheap for 10,000)
                    and spec != runner.spec
                    and self._broken.get(bot) != spec
                ):
                    try:
                        await self._update(runner, spec)
                    except (ValueError, msgspec.DecodeError) as exc:
                        self._broken[bot] = spec  # keep running the last good spec
                        log.error("bot spec not applied", extra={"bot": bot, "error": str(exc)})
            if self.beats < STABLE_BEATS or not self.leases.held:
                return  # let replicas starting with us show up first
            due = [
                spec
                for bot, spec in sorted(self.specs.items())
                if spec.enabled
                and bot not in self.dispatcher.runners
                and self._broken.get(bot) != spec  # failed to build; wait for a corrected spec
                and self.claims(bot)
                and not claimed_by(self.others, bot)  # its last owner has not released it yet
            ]
            if due:
                await self._start_many(due)
            self._metrics.leases.set(len(self.dispatcher.runners) if self.leases.held else 0)
            self.started.set()

    async def _start_many(self, due: list[BotSpec]) -> None:
        """Start ``due`` (claimed by us, by no one else): their records in one read, then
        :data:`START_CONCURRENCY` at a time, renewing our lease meanwhile."""
        loop = asyncio.get_running_loop()
        records = await self._records([spec.id for spec in due])
        for start in range(0, len(due), START_CONCURRENCY):
            chunk = due[start : start + START_CONCURRENCY]
            exec_seq = (await self._js.stream_info(subjects.STREAM_EXEC)).state.last_seq
            await asyncio.gather(
                *(self._start_claimed(spec, records.get(spec.id), exec_seq) for spec in chunk)
            )
            if loop.time() - self._last_beat >= self._heartbeat:
                self._last_beat = loop.time()  # thousands of starts outlast a lease: renew
                if not await self._keep_lease():
                    return

    async def _records(self, bots: list[str]) -> dict[str, tuple[BotRecord | None, int]]:
        """``bot -> (record, revision)`` of KV ``bot_state`` for ``bots``: one read of the
        bucket for many bots (:func:`~tradebus.common.bus.kv_live_entries`, exact), one
        get each for a few; a missing or undecodable record is ``(None, 0)``. The
        revision matters only for a record without its run number yet (a fresh start
        cut short, whose run is that revision): only such records are read again."""
        if len(bots) <= START_CONCURRENCY:
            return {bot: await self._record(bot) for bot in bots}
        wanted = set(bots)
        entries = await kv_live_entries(self._b.state, ">", timeout=30.0)
        out: dict[str, tuple[BotRecord | None, int]] = {}
        for key, value in entries.items():
            if key not in wanted:
                continue
            try:
                record = decode_record(value)
            except msgspec.DecodeError:
                out[key] = None, 0
                continue
            out[key] = await self._record(key) if record.run == 0 else (record, 0)
        return out

    async def _record(self, bot: str) -> tuple[BotRecord | None, int]:
        try:
            entry = await self._b.state.get(bot)
            return decode_record(entry.value or b""), entry.revision or 0
        except (KeyNotFoundError, msgspec.DecodeError):
            return None, 0

    async def _start_claimed(
        self, spec: BotSpec, record: tuple[BotRecord | None, int] | None, exec_seq: int
    ) -> None:
        """Run a bot our lease claims here (``record``: its ``bot_state`` entry)."""
        try:
            await self.start_bot(spec, record=record, exec_seq=exec_seq)
        except (ValueError, msgspec.DecodeError) as exc:
            # a spec this host cannot run (e.g. a market missing from its
            # markets file): the others must still start
            self._broken[spec.id] = spec
            self._remove(spec.id)
            log.error("bot cannot start", extra={"bot": spec.id, "error": str(exc)})

    # ------------------------------------------------------------- start/stop
    async def start_bot(
        self,
        spec: BotSpec,
        fresh: bool = False,
        record: tuple[BotRecord | None, int] | None = None,
        exec_seq: int | None = None,
    ) -> BotRunner:
        """Run ``spec`` here (our lease claims it): resume it, or start it fresh.

        ``record`` is its ``bot_state`` entry ``(record, revision)`` when already read
        (else it is read here); ``exec_seq`` the ``EXEC`` stream's last sequence taken
        just before (else asked here): a fresh bot skips the events up to it.
        """
        found, revision = record if record is not None else await self._record(spec.id)
        dry = not spec.execute_trades
        if found is None or fresh or dry or found.strategy != spec.strategy:
            was_live = found.execute_trades if found is not None else True
            cancel = (found is not None or fresh) and was_live
            return await self._start_fresh(spec, cancel_previous=cancel, exec_seq=exec_seq)
        return await self._resume(spec, found, revision)

    def _runner(self, spec: BotSpec, run: int, **kw: Any) -> BotRunner:
        return build_runner(spec, self._catalog, run, self._publisher.put_record, **kw)

    async def _start_fresh(
        self, spec: BotSpec, cancel_previous: bool, exec_seq: int | None = None
    ) -> BotRunner:
        record = BotRecord(strategy=spec.strategy, run=0, execute_trades=spec.execute_trades)
        if exec_seq is None:
            exec_seq = (await self._js.stream_info(subjects.STREAM_EXEC)).state.last_seq
        run = await self._b.state.put(spec.id, encode(record))
        runner = self._runner(spec, run, event_seq=exec_seq)
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

    async def _hand_over(self, bots: list[str]) -> bool:
        """Stop running ``bots`` here (their new owner resumes them) and store their final
        snapshots; True once every snapshot is acknowledged (only then may our lease stop
        claiming them: their new owner waits for that)."""
        for bot in bots:
            runner = self._remove(bot)
            if runner is not None:
                self._publisher.put_state(bot, runner.record())
        if not await self._publisher.drain(HANDOVER_SECONDS):
            log.warning("hand-over waits: snapshots not acknowledged", extra={"bots": len(bots)})
            return False
        if bots:
            log.info("bots handed over", extra={"bots": len(bots), "replica": self.replica})
        return True

    async def _retire(self, bot: str, removed: bool) -> None:
        """Stop a removed or disabled bot (cancels per ``cancel_on_exit``)."""
        runner = self.dispatcher.runners.get(bot)
        if runner is None:
            return
        self.dispatcher.stop(runner, persist=False)
        self._remove(bot)
        await self._publisher.drain(5.0)
        if removed:
            with contextlib.suppress(KeyNotFoundError):
                await self._b.state.delete(bot)
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
        """Leave: hand the bots to other live replicas, or, as the last one, stop them;
        then give our lease up (the others start our bots once it is gone).

        Returns the number of orders still open when giving up waiting.
        """
        async with self.lock:
            with contextlib.suppress(Exception):  # NATS gone: our lease expires anyway
                await self._read_leases()
            others = self.live - {self.replica}
            left = 0
            if others:
                await self._hand_over(list(self.dispatcher.runners))
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
