"""Who may do what on the bus: the allow-lists of every NATS user, in one place.

The users of the system account ``TRADEBUS`` (README "Who may do what",
docs/design.md "Bus permissions"): each service publishes and subscribes only
what it needs (least privilege); ``operator`` (the ``tradebus`` CLI, stream
maintenance) may do everything. A person's user lives in their own account
(:func:`person_permissions`).

Subjects are those of :mod:`tradebus.common.subjects`. ``$JS.API.*`` are the
JetStream requests the services' nats-py calls make, ``$KV.<bucket>.>`` a KV
write, ``$JS.FC.>`` an ordered consumer's flow control, ``$JS.ACK.>`` a pull
consumer's ack, ``_INBOX.>`` replies to the user's own requests.

NATS wildcards match whole tokens only: ``$JS.API.STREAM.INFO.INTENTS_*`` is
not a pattern, it is the stream named ``INTENTS_*``. Execution makes the
stream of a person added at run time (``INTENTS_<user>``), so it is allowed
``$JS.API.STREAM.<op>.*`` (any stream) with the streams that are not its own
denied by name (a deny wins over an allow): the KV buckets of the strategy
hosts. A stream tradebus adds later is execution's unless it is denied here.
"""

from __future__ import annotations

from tradebus.common import subjects
from tradebus.natsauth.claims import NO_LIMIT, VERSION, Permission, ResponsePermission, UserNats

OPERATOR = "operator"
"""The admin user: the ``tradebus`` CLI, ``tradebus demo``'s own questions."""
SERVICES = ("marketdata", "strategy", "execution", "reconciler")
"""The users of the four services (a service's user is its name)."""
GATEWAY = "gateway"
"""The web API's user."""
NOTIFIER = "notifier"
"""The notifier's user: it reads every user's events, and publishes nothing."""
SYSTEM_USERS = (*SERVICES, OPERATOR, GATEWAY, NOTIFIER)
"""Every user of the account ``TRADEBUS``."""
GATEWAY_AUDIT = "gateway-audit"
"""The gateway's durable consumer on ``AUDIT`` (``tradebus.gateway.audit_sink.DURABLE``)."""

RESPONSES = ResponsePermission(max=1, ttl=0)
"""A service answering requests: one reply per request received, to its reply subject
(nats.conf's ``allow_responses: true``)."""

_SHARED_STREAMS = tuple(subjects.STREAM_SUBJECTS)  # EXEC, RECON, AUDIT, DRYRUN
_HOST_BUCKETS = (
    subjects.KV_BOTS,
    subjects.KV_BOT_STATE,
    subjects.KV_LEASES,
    subjects.KV_GROUP_VOLUME,
)


def _ensure(*streams: str) -> list[str]:
    """What ``ensure_stream`` asks of JetStream for ``streams``: info, create, update."""
    return [f"$JS.API.STREAM.{op}.{s}" for s in streams for op in ("INFO", "CREATE", "UPDATE")]


def _kv(*buckets: str) -> list[str]:
    """Everything nats-py's KV does with ``buckets``: create, get (direct or not),
    put/delete (``$KV.<bucket>.<key>``), watch and keys (ordered consumers)."""
    allowed: list[str] = []
    for bucket in buckets:
        stream = f"KV_{bucket}"
        allowed += [
            f"$KV.{bucket}.>",
            f"$JS.API.STREAM.INFO.{stream}",
            f"$JS.API.STREAM.CREATE.{stream}",
            f"$JS.API.DIRECT.GET.{stream}.>",
            f"$JS.API.STREAM.MSG.GET.{stream}",
            f"$JS.API.CONSUMER.*.{stream}",
            f"$JS.API.CONSUMER.*.{stream}.>",
        ]
    return allowed


def _read_kv(bucket: str) -> list[str]:
    """Reading KV ``bucket`` with nats-py (get, keys, watch; making it, empty, if it does
    not exist), never writing a key of it."""
    stream = f"KV_{bucket}"
    return [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.STREAM.CREATE.{stream}",  # an empty bucket, as its writers make it
        f"$JS.API.DIRECT.GET.{stream}.>",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.CONSUMER.*.{stream}",
        f"$JS.API.CONSUMER.*.{stream}.>",
    ]


def _read_streams(*streams: str) -> list[str]:
    """Ordered consumers and single-message reads on ``streams`` (a stream looked up by
    subject: ``STREAM.NAMES``; flow control on ``$JS.FC``)."""
    allowed = ["$JS.API.STREAM.NAMES", "$JS.FC.>"]
    for stream in streams:
        allowed += [
            f"$JS.API.CONSUMER.*.{stream}",
            f"$JS.API.CONSUMER.*.{stream}.>",
            f"$JS.API.STREAM.MSG.GET.{stream}",
        ]
    return allowed


def _durable(stream: str, consumer: str) -> list[str]:
    """A durable pull consumer ``consumer`` on ``stream`` (``*``: any stream): create,
    info, fetch, ack."""
    return [
        f"$JS.API.CONSUMER.CREATE.{stream}.{consumer}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{consumer}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{consumer}",
        f"$JS.API.CONSUMER.INFO.{stream}.{consumer}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
        f"$JS.ACK.{stream}.{consumer}.>",
    ]


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def marketdata() -> UserNats:
    """Ticks and feed health, nothing else; it reads nothing from the bus."""
    return _user(pub=["md.>", "feed.status.>"], sub_deny=[">"])


def strategy() -> UserNats:
    """The bot hosts (and ``tradebus-bots-apply``, which writes KV ``bots`` as them)."""
    return _user(
        pub=[
            subjects.INTENT_ALL,  # intents of every user's bots (trusted)
            subjects.exec_query("balances"),  # account balances (request)
            subjects.exec_query("markets"),  # the venues' market rules (request)
            subjects.EXEC_BOT_ADJUST,  # journal a bot's position correction (request)
            subjects.BOT_STATUS_ALL,  # each bot's status changes
            subjects.DRYRUN_ALL,  # what its dry-run bots did (stream DRYRUN)
            subjects.audit("strategy"),  # what it did on someone's behalf (ctl.bots.*)
            subjects.audit("cli"),  # tradebus-bots-apply (as this user): the bots it wrote
            "$JS.API.INFO",
            *_ensure(*_SHARED_STREAMS),  # ensure_streams at start
            *_read_streams(subjects.STREAM_EXEC),  # exec.evt.>: its bots' order events
            *_kv(*_HOST_BUCKETS),
        ],
        sub=[subjects.MD_ALL, "ctl.bots.>", "_INBOX.>"],
        responses=True,  # answers ctl.bots.*
    )


def execution() -> UserNats:
    """The only writer to venues and the ledger; owns the streams ``INTENTS_<user>``
    (one per person, made at run time too), ``DEADLETTER`` and KV ``killswitch``."""
    any_stream = [
        f"$JS.API.STREAM.{op}.*" for op in ("INFO", "CREATE", "UPDATE", "MSG.GET", "MSG.DELETE")
    ]
    not_its_own = [
        f"$JS.API.STREAM.{op}.KV_{bucket}"
        for bucket in _HOST_BUCKETS
        for op in ("INFO", "CREATE", "UPDATE", "MSG.GET", "MSG.DELETE")
        # KV bots is read (its strategy groups' capital caps; made empty if missing, as
        # the hosts would), never written
        if not (bucket == subjects.KV_BOTS and op in ("INFO", "CREATE", "MSG.GET"))
    ]
    return _user(
        pub=[
            "exec.>",  # order events, account alerts
            subjects.DEADLETTER_INTENT_ALL,  # intents it gave up on (DEADLETTER)
            subjects.audit("execution"),  # kill switch, paper adjustments, accounts sync
            "$JS.API.INFO",
            # each person's INTENTS_<user> (ensure it; read back and delete a dead letter),
            # EXEC, RECON, AUDIT, DEADLETTER
            *any_stream,
            # its durable pull consumers: `execution` on every INTENTS_<user>,
            # `execution-deadletters` on DEADLETTER
            *_durable("*", "execution"),
            *_durable(subjects.STREAM_DEADLETTER, "execution-deadletters"),
            *_kv(subjects.KV_KILLSWITCH),  # engaged kill switches, kept across restarts
            *_read_kv(subjects.KV_BOTS),  # the strategy groups' capital caps (read only)
            "$JS.FC.>",
        ],
        pub_deny=not_its_own,
        # intents arrive through its pull consumers on its inbox, never by subscribing
        sub=[
            subjects.MD_ALL,
            "_INBOX.>",
            "exec.query.>",  # balances
            subjects.EXEC_ADJUST,  # ledger adjustments (reconciler)
            subjects.EXEC_BOT_ADJUST,  # bots' position corrections (strategy hosts)
            subjects.CTL_KILLSWITCH,  # operator
            subjects.CTL_PAPER_ADJUST,  # operator
            subjects.CTL_ACCOUNTS_SYNC,  # gateway, CLI: accounts added or changed at run time
        ],
        responses=True,  # answers all of these
    )


def reconciler() -> UserNats:
    """Venue balances (asked from execution) against the ledger; drift reports."""
    return _user(
        pub=[
            subjects.exec_query("balances"),
            subjects.EXEC_ADJUST,  # drift policy `adjust` (request)
            subjects.RECON_ALL,
            subjects.audit("reconciler"),  # a run asked on ctl.recon.run
            "$JS.API.INFO",
            *_ensure(*_SHARED_STREAMS),  # ensure_streams at start
        ],
        sub=["ctl.recon.>", "_INBOX.>"],
        responses=True,  # answers ctl.recon.run
    )


def gateway() -> UserNats:
    """The web API: it acts for signed-in people through the same requests as the CLI
    (``ctl.*``, manual intents, balances), manages KV ``bots``, follows order events,
    alerts, reconciliation reports and bot statuses for its WebSocket push, and writes
    the ``AUDIT`` stream to the ledger (its durable consumer :data:`GATEWAY_AUDIT`)."""
    return _user(
        pub=[
            # a person's manual order through the API: as their own NATS intent would
            # arrive (``person.intent.<user>.manual``), or as the system's
            subjects.PERSON_PREFIX + subjects.INTENT_ALL,
            subjects.INTENT_ALL,
            "ctl.>",  # bots, kill switch, reconciliation, accounts sync
            subjects.exec_query("balances"),
            subjects.audit("gateway"),
            "$JS.API.INFO",
            *_ensure(*_SHARED_STREAMS),
            *_read_streams(
                subjects.STREAM_EXEC,
                subjects.STREAM_RECON,
                subjects.STREAM_AUDIT,
                subjects.STREAM_DRYRUN,  # a dry-run bot's records (GET /api/v1/bots/{id}/dry-run)
            ),
            *_durable(subjects.STREAM_AUDIT, GATEWAY_AUDIT),
            *_kv(subjects.KV_BOTS),
        ],
        sub=[
            subjects.EXEC_EVT_ALL,
            subjects.EXEC_ALERT_ALL,
            subjects.RECON_ALL,
            subjects.BOT_STATUS_ALL,
            subjects.AUDIT_ALL,
            "_INBOX.>",
        ],
    )


def notifier() -> UserNats:
    """The notifier: it reads every user's order events, account alerts, drift alerts,
    bot statuses and kill switch changes (core subscriptions; a KV put is a message on
    ``$KV.killswitch.<key>``) and publishes nothing on the bus."""
    return _user(
        pub=[],
        pub_deny=[">"],
        sub=[
            subjects.EXEC_EVT_ALL,
            subjects.EXEC_ALERT_ALL,
            subjects.RECON_ALERT_ALL,
            subjects.BOT_STATUS_ALL,
            subjects.kv_subject(subjects.KV_KILLSWITCH, ">"),
        ],
    )


def operator() -> UserNats:
    """Everything (no permissions at all)."""
    return UserNats(
        pub=Permission(),
        sub=Permission(),
        subs=NO_LIMIT,
        data=NO_LIMIT,
        payload=NO_LIMIT,
        type="user",
        version=VERSION,
    )


SYSTEM_PERMISSIONS = {
    "marketdata": marketdata,
    "strategy": strategy,
    "execution": execution,
    "reconciler": reconciler,
    OPERATOR: operator,
    GATEWAY: gateway,
    NOTIFIER: notifier,
}
"""Each user of ``TRADEBUS`` and the function making its permissions."""


CLAIMS_UPDATE = "$SYS.REQ.CLAIMS.UPDATE"
"""Where a new or changed account JWT is pushed (nats-server's full resolver)."""


def claims_updater() -> UserNats:
    """The system-account user of the registrar: it may push account JWTs and read the
    answers, nothing else (no ``$SYS`` event, no other server request)."""
    return _user(pub=[CLAIMS_UPDATE], sub=["_INBOX.>"])


def person_permissions(user: str) -> UserNats:
    """A person's user: they publish only their own intents (``intent.<user>.>``, which
    the service import carries into ``TRADEBUS`` as ``person.intent.<user>.>``) and
    read only their own order events, account alerts and bot statuses, and the replies
    to their own requests (their account's ``_INBOX.>``: nobody else's).

    Raises
    ------
    tradebus.common.subjects.SubjectError
        If ``user`` is not a valid subject token.
    """
    token = subjects.token(user, "user")
    return _user(
        pub=[f"intent.{token}.>"],
        sub=[
            f"exec.evt.{token}.>",
            f"exec.alert.{token}.>",
            subjects.bot_status_of(token),
            "_INBOX.>",
        ],
    )


def _user(
    pub: list[str],
    sub: list[str] | None = None,
    pub_deny: list[str] | None = None,
    sub_deny: list[str] | None = None,
    responses: bool = False,
) -> UserNats:
    return UserNats(
        pub=Permission(allow=_dedupe(pub), deny=list(pub_deny or [])),
        sub=Permission(allow=_dedupe(sub or []), deny=list(sub_deny or [])),
        resp=RESPONSES if responses else None,
        subs=NO_LIMIT,  # the account's limits apply
        data=NO_LIMIT,
        payload=NO_LIMIT,
        type="user",
        version=VERSION,
    )
