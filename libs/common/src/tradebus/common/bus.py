"""NATS connection, idempotent JetStream setup, and small publish/request helpers.

The streams (DESIGN.md, "Bus"): each user's ``INTENTS_<user>`` captures that
user's ``intent.<user>.>`` and ``person.intent.<user>.>`` (a work queue:
execution's ack removes an intent; its limits are the user's quota), ``EXEC``
captures ``exec.evt.>`` and ``exec.alert.>``, ``RECON`` captures ``recon.>``,
``DEADLETTER`` keeps the intents execution gave up on. They are file-backed
with a duplicate window, so a publisher that sets ``Nats-Msg-Id`` (intent id,
event id) can retry without creating a second message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)
from nats.js.kv import KeyValue

from tradebus.common import subjects
from tradebus.common.codec import encode
from tradebus.common.config import redact_url

log = logging.getLogger(__name__)

DAY_SECONDS = 86_400.0
DUPLICATE_WINDOW_SECONDS = 120.0
MSG_ID = "Nats-Msg-Id"


class TolerantClient(NATS):
    """A nats-py client that survives a delivered subject that is not UTF-8.

    nats-py 2.16 decodes every delivered subject strictly
    (``Client._build_message``); one message on ``intent.>`` whose subject is
    not UTF-8 (nats-server accepts any bytes) raised inside its read loop,
    which ended without reconnecting: the service lived on, deaf. Subjects
    and reply subjects are decoded with ``surrogateescape`` instead, so such
    a message reaches the service, which refuses it (``bad_subject``).
    Found by tests/faults/test_hostile_intents.py.
    ``reconnect_hooks`` are run (each as its own task) after every reconnect.
    ``stream_replicas`` (``None``: not set) is the replica count of every stream
    and KV bucket created or updated through :meth:`jetstream`
    (:class:`ReplicatedJetStream`).
    """

    def __init__(self, stream_replicas: int | None = None) -> None:
        super().__init__()
        if stream_replicas is not None and stream_replicas < 1:
            raise ValueError(f"stream_replicas must be at least 1, not {stream_replicas}")
        self.stream_replicas = stream_replicas
        self.reconnect_hooks: list[Callable[[], Awaitable[None]]] = []
        self._hook_tasks: set[asyncio.Future[None]] = set()

    def jetstream(self, **opts: Any) -> JetStreamContext:
        """A JetStream context (nats-py's ``**opts``); a :class:`ReplicatedJetStream` when
        this client was given ``stream_replicas``."""
        if self.stream_replicas is None:
            return super().jetstream(**opts)
        return ReplicatedJetStream(self, self.stream_replicas, **opts)

    def run_reconnect_hooks(self) -> None:
        """Start every reconnect hook as its own task (kept until it ends)."""
        for hook in self.reconnect_hooks:
            task = asyncio.ensure_future(hook())
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_tasks.discard)

    def _build_message(
        self,
        sid: int,
        subject: bytes,
        reply: bytes,
        data: bytes,
        headers: dict[str, str] | None,
    ) -> Any:
        return self.msg_class(
            subject=subject.decode(errors="surrogateescape"),
            reply=reply.decode(errors="surrogateescape"),
            data=data,
            headers=headers,
            _client=self,
            _sid=sid,
        )


class ReplicatedJetStream(JetStreamContext):
    """A JetStream context that creates and updates every stream with ``replicas`` copies.

    On a NATS cluster (``TRADEBUS_STREAM_REPLICAS=3``) a stream or KV bucket then
    survives the loss of a node: JetStream keeps ``replicas`` copies on distinct
    servers, elects a leader among them and accepts a write once a majority has it.
    Every stream and bucket a service creates goes through its client's context
    (:meth:`TolerantClient.jetstream`): the shared streams (:func:`ensure_streams`),
    each user's ``INTENTS_<user>`` and ``DEADLETTER`` (execution's intake), and the
    KV buckets (``create_key_value`` makes its stream with :meth:`add_stream`), so
    the setting is given once, at :func:`connect`. A KV bucket that exists already
    keeps its replicas (it is opened, not updated); a stream is updated to them
    (JetStream moves its copies). Server default without it: 1.

    Raises (from nats-server, on :meth:`add_stream`/:meth:`update_stream`)
    ----------------------------------------------------------------------
    nats.js.errors.ServiceUnavailableError, nats.js.errors.BadRequestError
        If the cluster has fewer than ``replicas`` servers with JetStream.
    """

    def __init__(self, conn: NATS, replicas: int, **opts: Any) -> None:
        super().__init__(conn, **opts)
        self.replicas = replicas

    async def add_stream(self, config: StreamConfig | None = None, **params: Any) -> StreamInfo:
        """``JetStreamContext.add_stream`` with ``num_replicas`` = :attr:`replicas`."""
        config = (config or StreamConfig()).evolve(**params, num_replicas=self.replicas)
        return await super().add_stream(config)

    async def update_stream(self, config: StreamConfig | None = None, **params: Any) -> StreamInfo:
        """``JetStreamContext.update_stream`` with ``num_replicas`` = :attr:`replicas`."""
        config = (config or StreamConfig()).evolve(**params, num_replicas=self.replicas)
        return await super().update_stream(config)


STREAM_MAX_AGE_SECONDS: dict[str, float] = {
    subjects.STREAM_EXEC: 7 * DAY_SECONDS,
    subjects.STREAM_RECON: 30 * DAY_SECONDS,
    subjects.STREAM_AUDIT: 30 * DAY_SECONDS,  # a buffer: the gateway writes it to audit_log
    subjects.STREAM_DRYRUN: 7 * DAY_SECONDS,
}
INTENTS_MAX_AGE_SECONDS = 7 * DAY_SECONDS
DEADLETTER_MAX_AGE_SECONDS = 30 * DAY_SECONDS


class IntentQuota(msgspec.Struct, frozen=True, kw_only=True):
    """The limits of one user's ``INTENTS_<user>`` stream, enforced by nats-server.

    ``backlog_msgs`` and ``backlog_bytes`` bound the intents waiting for
    execution (the stream is a work queue: an acked intent is gone); a
    publish beyond them, or of a message over ``msg_bytes``, is refused by
    JetStream with an error ack (``maximum messages exceeded``, ``message
    size exceeds maximum allowed``) and never stored.
    """

    backlog_msgs: int = 10_000
    backlog_bytes: int = 64 * 1024 * 1024
    msg_bytes: int = 8 * 1024


class CredentialsError(ValueError):
    """A NATS ``.creds`` file cannot be used; the message names it and says why."""


def check_creds(path: str) -> None:
    """Check that ``path`` is a readable NATS ``.creds`` file (a user JWT block and a user
    seed block): nats-py reads it at every (re)connect, and loops forever on a file
    without a JWT block.

    Raises
    ------
    CredentialsError
        If it cannot be read or lacks a block.
    """
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise CredentialsError(f"NATS credentials {path}: {exc.strerror}") from None
    for block in ("-----BEGIN NATS USER JWT-----", "-----BEGIN USER NKEY SEED-----"):
        if block not in text:
            raise CredentialsError(f"NATS credentials {path}: no {block} (not a .creds file)")


async def connect(
    url: str, name: str, creds: str = "", stream_replicas: int | None = None, **options: Any
) -> NATS:
    """Connect to NATS at ``url`` as client ``name``, reconnecting forever.

    ``url`` may list several servers of a cluster, comma-separated
    (``nats://n1:4222,nats://n2:4222``): the client connects to one, and moves to
    another when it goes (it also learns the cluster's other servers from the one it
    reached). ``stream_replicas``: how many copies JetStream keeps of every stream and
    KV bucket this client creates (:class:`ReplicatedJetStream`; ``None``: the
    server's default, 1). ``creds``: the path of a ``.creds`` file (a user JWT and its nkey seed,
    operator mode: ``tradebus nats-init``); empty: no credentials (or those of
    the URL). ``options`` are passed to :func:`nats.connect` and override the
    defaults.

    Raises
    ------
    CredentialsError
        If ``creds`` names a file that is not readable NATS credentials.
    nats.errors.NoServersError
        If no server answers within the connect timeout on the first try.
    nats.errors.Error
        If the server refuses the credentials (an authorization violation).
    """
    if creds:
        check_creds(creds)
        options.setdefault("user_credentials", creds)
    nc = TolerantClient(stream_replicas)

    async def on_error(exc: Exception) -> None:
        log.warning("nats error", extra={"error": repr(exc)})

    async def on_disconnected() -> None:
        if nc.is_draining or nc.is_closed:
            log.info("nats connection closed")
        else:
            log.warning("nats disconnected")

    async def on_reconnected() -> None:
        log.info("nats reconnected")
        nc.run_reconnect_hooks()

    defaults: dict[str, Any] = {
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "connect_timeout": 5,
        "error_cb": on_error,
        "disconnected_cb": on_disconnected,
        "reconnected_cb": on_reconnected,
    }
    defaults.update(options)
    log.info("connecting to nats", extra={"url": redact_url(url), "client": name})
    servers = [server.strip() for server in url.split(",") if server.strip()]
    await nc.connect(servers, **defaults)
    return nc


class StreamTail:
    """Every new message of a stream's ``subject``, in order, across server restarts.

    A JetStream ordered consumer (ephemeral, in memory) is gone when
    nats-server restarts. nats-py notices only when two idle heartbeats are
    missed (10 s by default: the subscriber is deaf meanwhile), and then
    recreates it from the last stream sequence it delivered, which is 0 if
    none was delivered yet: the whole stream again. A tail starts at the
    stream's next sequence (what ``DeliverPolicy.NEW`` means, but known),
    remembers the sequence after the last message it handed on, and on every
    reconnect of its client (a :class:`TolerantClient` from :func:`connect`)
    replaces its consumer by a new one from there at once. A message below
    that sequence (a re-delivery from nats-py's own recovery) is dropped, so
    ``cb`` sees each message once, in stream order.
    Found by tests/faults/test_nats_restart.py.
    """

    RETRY_SECONDS = 0.5

    def __init__(
        self, nc: NATS, stream: str, subject: str, cb: Callable[[Msg], Awaitable[None]]
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._stream = stream
        self._subject = subject
        self._cb = cb
        self._sub: Subscription | None = None
        self._lock = asyncio.Lock()
        self._stopped = False
        self.next_seq = 0
        """Stream sequence of the next message to hand on."""

    async def start(self) -> None:
        """Tail from the stream's next message; resubscribe after each reconnect."""
        info = await self._js.stream_info(self._stream)
        self.next_seq = info.state.last_seq + 1
        await self._subscribe()
        if isinstance(self._nc, TolerantClient):
            self._nc.reconnect_hooks.append(self.resubscribe)

    async def _on_msg(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        if seq < self.next_seq:
            return
        self.next_seq = seq + 1
        await self._cb(msg)

    async def _subscribe(self) -> None:
        self._sub = await self._js.subscribe(
            self._subject,
            stream=self._stream,
            cb=self._on_msg,
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.next_seq
            ),
        )

    async def resubscribe(self) -> None:
        """Replace the consumer by a new one from :attr:`next_seq` (retried until it works)."""
        async with self._lock:
            while not self._stopped and not self._nc.is_closed:
                old, self._sub = self._sub, None
                if old is not None:
                    with contextlib.suppress(Exception):
                        await old.unsubscribe()
                try:
                    await self._subscribe()
                except Exception as exc:
                    log.warning(
                        "stream tail not restored yet",
                        extra={"stream": self._stream, "error": repr(exc)},
                    )
                    await asyncio.sleep(self.RETRY_SECONDS)
                    continue
                log.info(
                    "stream tail restored",
                    extra={"stream": self._stream, "from_seq": self.next_seq},
                )
                return

    async def stop(self) -> None:
        """Stop tailing."""
        self._stopped = True
        if isinstance(self._nc, TolerantClient) and self.resubscribe in self._nc.reconnect_hooks:
            self._nc.reconnect_hooks.remove(self.resubscribe)
        async with self._lock:
            if self._sub is not None:
                await self._sub.unsubscribe()
                self._sub = None


def stream_configs() -> list[StreamConfig]:
    """The JetStream stream definitions tradebus needs."""
    return [
        StreamConfig(
            name=name,
            subjects=list(stream_subjects),
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=STREAM_MAX_AGE_SECONDS[name],
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
        )
        for name, stream_subjects in subjects.STREAM_SUBJECTS.items()
    ]


def intents_stream_config(user: str, quota: IntentQuota) -> StreamConfig:
    """The definition of ``INTENTS_<user>``: a work queue of the user's intents within ``quota``."""
    return StreamConfig(
        name=subjects.intents_stream(user),
        subjects=subjects.intents_stream_subjects(user),
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        max_msgs=quota.backlog_msgs,
        max_bytes=quota.backlog_bytes,
        max_msg_size=quota.msg_bytes,
        max_age=INTENTS_MAX_AGE_SECONDS,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )


def deadletter_stream_config(consumer: str) -> StreamConfig:
    """The definition of ``DEADLETTER``: copies of the intents execution gave up on, and
    JetStream's advisories of intents delivered ``max_deliver`` times to ``consumer``."""
    return StreamConfig(
        name=subjects.STREAM_DEADLETTER,
        subjects=[
            subjects.DEADLETTER_INTENT_ALL,
            subjects.max_deliveries_advisory("*", consumer),
        ],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=DEADLETTER_MAX_AGE_SECONDS,
        max_bytes=256 * 1024 * 1024,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream ``config`` defines, or update it to that definition. Idempotent.

    A definition without ``num_replicas`` keeps an existing stream's replicas (a
    client without ``stream_replicas`` never scales a cluster's streams down); a
    :class:`ReplicatedJetStream` sets its own."""
    if config.name is None:
        raise ValueError("a stream needs a name")
    try:
        info = await js.stream_info(config.name)
    except nats.js.errors.NotFoundError:
        await js.add_stream(config)
        log.info("created stream", extra={"stream": config.name})
    else:
        if config.num_replicas is None:
            config = config.evolve(num_replicas=info.config.num_replicas)
        await js.update_stream(config)


async def ensure_streams(js: JetStreamContext) -> None:
    """Create the shared streams (``EXEC``, ``RECON``, ``AUDIT``, ``DRYRUN``), or update them to the
    current definition. Idempotent."""
    for config in stream_configs():
        await ensure_stream(js, config)


async def publish_event(js: JetStreamContext, subject: str, message: Any, msg_id: str) -> None:
    """Publish ``message`` to JetStream with ``Nats-Msg-Id = msg_id`` and wait for the ack.

    Raises
    ------
    nats.errors.TimeoutError
        If JetStream does not acknowledge in time (the caller must retry or not ack).
    """
    await js.publish(subject, encode(message), headers={MSG_ID: msg_id})


async def request(nc: NATS, subject: str, message: Any, timeout: float = 5.0) -> bytes:
    """Send a request and return the raw reply payload.

    Raises
    ------
    nats.errors.TimeoutError
        If nobody answers in ``timeout`` seconds.
    nats.errors.NoRespondersError
        If nobody listens on ``subject``.
    """
    reply = await nc.request(subject, encode(message), timeout=timeout)
    return reply.data


KV_WATCH_INACTIVE_SECONDS = 5.0
"""The server drops a stopped watch's consumer after this long (nats-py's default:
5 minutes, i.e. hundreds of idle consumers on a busy bucket)."""


async def kv_live_entries(
    kv: KeyValue, pattern: str, *, timeout: float = 5.0, headers_only: bool = False
) -> dict[str, bytes]:
    """The keys of ``kv`` matching ``pattern`` that are present now, with their values
    (``b""`` each when ``headers_only``): one watch of the last entry per key, deletes
    and expiry markers skipped.

    nats-py's watch may put its "nothing to read" marker first while the first
    entries are still on their way (its consumer-info reply overtook them): a busy
    machine saw both live strategy replicas as none once in ~2,400 reads, and the
    gateway listed none of four bots just created. So a watch that ends before any
    key is not trusted: :func:`_kv_entries_by_subject` asks the stream which of the
    pattern's subjects hold messages and reads each key's last value directly, an
    exact answer with no grace period to guess (nothing to read: one request).

    Raises
    ------
    nats.errors.TimeoutError
        If the server sends nothing for ``timeout`` seconds.
    """
    watcher = await kv.watch(
        pattern,
        ignore_deletes=True,
        meta_only=headers_only,
        inactive_threshold=KV_WATCH_INACTIVE_SECONDS,
    )
    out: dict[str, bytes] = {}
    try:
        while True:
            entry = await watcher.updates(timeout=timeout)
            if entry is None and not out:
                return await _kv_entries_by_subject(kv, pattern, headers_only)
            if entry is None:
                return out
            if entry.operation is None:  # a put
                out[entry.key] = entry.value or b""
            if entry.delta == 0:
                return out
    finally:
        await watcher.stop()


async def _kv_entries_by_subject(
    kv: KeyValue, pattern: str, headers_only: bool
) -> dict[str, bytes]:
    """:func:`kv_live_entries` read without a watch: the subjects of ``pattern`` that
    hold messages (JetStream's stream info with a subject filter), then each key's last
    entry (``kv.get``; a deleted or purged key is skipped).

    nats-py's KeyValue keeps its JetStream context, stream and subject prefix in private
    attributes (``_js``, ``_stream``, ``_pre``; nats-py is pinned by uv.lock).
    """
    prefix: str = kv._pre
    info = await kv._js.stream_info(kv._stream, subjects_filter=prefix + pattern)
    out: dict[str, bytes] = {}
    for subject in sorted(info.state.subjects or {}):
        key = subject.removeprefix(prefix)
        try:
            entry = await kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            continue
        out[key] = b"" if headers_only else entry.value or b""
    return out


# ------------------------------------------------------------------ one-shot clients


class NatsUnavailable(Exception):
    """A one-shot client could not connect: the message says why in one line, naming the
    server (its URL, password redacted): refused credentials, refused connection, timeout."""


def connect_failure(url: str, errors: list[BaseException]) -> str:
    """One line for people on why connecting to ``url`` failed, from the errors nats-py
    reported (its error callback and the final exception): an authorization violation
    (the server's ``-ERR 'Authorization Violation'``) says the credentials were refused,
    not ``NoServersError``; anything else names the server and the socket's error."""
    shown = redact_url(url)
    texts = [str(e).lower() for e in errors]
    if any("authorization violation" in t or "authentication" in t for t in texts):
        return f"NATS refused the credentials (authorization violation) at {shown}"
    for err in errors:
        if isinstance(err, ConnectionRefusedError):
            return f"cannot reach NATS at {shown}: connection refused"
        if isinstance(err, (TimeoutError, nats.errors.TimeoutError)):
            return f"cannot reach NATS at {shown}: timed out"
        if isinstance(err, OSError):
            return f"cannot reach NATS at {shown}: {err.strerror or err}"
    return f"cannot reach NATS at {shown}: no server answered"


async def connect_once(
    url: str,
    creds: str = "",
    timeout: float = 3.0,
    stream_replicas: int | None = None,
    **options: Any,
) -> NATS:
    """A connection for a one-shot client (the CLI, ``tradebus-bots-apply``): one quick
    retry, then give up, quietly (nats-py's default error callback prints tracebacks).

    ``creds``: the path of a ``.creds`` file ("" none). ``url`` and ``stream_replicas``
    as for :func:`connect`. ``options`` go to
    :func:`nats.connect`. nats-py treats ``max_reconnect_attempts=0`` as "forever",
    so a command with the server down would hang: one retry after 0.2 s instead.

    Raises
    ------
    CredentialsError
        If ``creds`` is not a readable ``.creds`` file.
    NatsUnavailable
        If the server cannot be reached or refuses the credentials
        (:func:`connect_failure` says which).
    """
    if creds:
        check_creds(creds)
    errors: list[BaseException] = []

    async def remember(exc: Exception) -> None:
        errors.append(exc)

    settings: dict[str, Any] = {
        "connect_timeout": timeout,
        "max_reconnect_attempts": 1,
        "reconnect_time_wait": 0.2,
        "error_cb": remember,
        "user_credentials": creds or None,
    }
    settings.update(options)
    nc = TolerantClient(stream_replicas)
    try:
        await nc.connect([u.strip() for u in url.split(",") if u.strip()], **settings)
        return nc
    except (OSError, TimeoutError, ValueError, nats.errors.Error) as exc:
        raise NatsUnavailable(connect_failure(url, [*errors, exc])) from None
