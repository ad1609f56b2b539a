"""Audit events: who changed what, from where, before and after.

Every part of tradebus that changes state on someone's behalf (the gateway,
the CLI, a strategy host answering ``ctl.bots.*``, execution answering
``ctl.killswitch``, ``ctl.paper.adjust`` and ``ctl.accounts.sync``, the
reconciler answering ``ctl.recon.run``) publishes one
:class:`~tradebus.common.messages.AuditEvent` on ``audit.<source>``. The
JetStream stream ``AUDIT`` keeps them until the gateway writes them to the
``audit_log`` table (``event_id`` is the message id and the row's unique key:
a republished event is stored once).

Values in ``before``/``after``/``details`` are JSON (money as strings) and
never hold a secret: callers pass specs and settings, never keys.
"""

from __future__ import annotations

import getpass
import logging
import os
import uuid
from typing import Any

import msgspec
from nats.js import JetStreamContext

from tradebus.common import subjects
from tradebus.common.bus import MSG_ID
from tradebus.common.clock import Clock
from tradebus.common.codec import encode
from tradebus.common.ids import UserId
from tradebus.common.messages import AuditEvent, AuditSource

log = logging.getLogger(__name__)

UNKNOWN_ACTOR = "nats"
"""The actor of a ``ctl.*`` request that named none (a bare ``nats req``)."""
PUBLISH_TIMEOUT_SECONDS = 2.0
"""How long :meth:`AuditTrail.publish` waits for JetStream's ack."""


def local_actor(prefix: str = "cli") -> str:
    """``<prefix>:<login>``: the person running this process (the CLI, a one-shot), for
    the ``actor`` of what it does; the numeric uid when it has no login name (a container)."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid
        login = str(os.getuid())
    return f"{prefix}:{login}"


def as_json(value: Any) -> dict[str, Any] | None:
    """``value`` (a Struct, a dict, None) as a JSON object for ``before``/``after``."""
    if value is None:
        return None
    built = msgspec.json.decode(encode(value))  # Decimals as strings, Structs as objects
    return built if isinstance(built, dict) else {"value": built}


class AuditTrail:
    """Publishes the audit events of one ``source`` (``gateway``, ``cli``, ``strategy``,
    ``execution``, ``reconciler``).

    ``js`` is a JetStream context of a connection allowed to publish
    ``audit.<source>``; ``clock`` gives the event times; ``timeout`` (seconds)
    bounds the wait for JetStream's ack of each event.

    What goes in ``before``/``after``/``details`` is the caller's to choose and
    must never be a secret: bot specs, account settings without credentials,
    lifecycle states, reasons, balances.
    """

    def __init__(
        self,
        js: JetStreamContext,
        source: AuditSource,
        clock: Clock,
        timeout: float = PUBLISH_TIMEOUT_SECONDS,
    ) -> None:
        self._js = js
        self._source: AuditSource = source
        self._clock = clock
        self._timeout = timeout

    @property
    def source(self) -> AuditSource:
        """The part of tradebus whose events these are (``audit.<source>``)."""
        return self._source

    def event(
        self,
        actor: str,
        action: str,
        target: str,
        user: str | None = None,
        before: Any = None,
        after: Any = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEvent:
        """A new event of this source, now (see :class:`AuditEvent` for the fields)."""
        return AuditEvent(
            event_id=uuid.uuid4().hex,
            ts_event=self._clock.now_ns(),
            actor=actor or UNKNOWN_ACTOR,
            source=self._source,
            action=action,
            target=target,
            user=UserId(user) if user is not None else None,
            before=as_json(before),
            after=as_json(after),
            details=dict(details or {}),
        )

    async def publish(self, event: AuditEvent) -> None:
        """Publish ``event`` on ``audit.<source>`` and wait for JetStream's ack.

        Raises
        ------
        nats.errors.Error
            If JetStream does not take it (the caller decides whether that
            undoes the change or is only logged: :meth:`record`).
        """
        await self._js.publish(
            subjects.audit(self._source),
            encode(event),
            timeout=self._timeout,
            headers={MSG_ID: event.event_id},
        )

    async def record(self, actor: str, action: str, target: str, **fields: Any) -> AuditEvent:
        """Make and publish an event; a failure to publish is logged (with the event,
        which holds no secret), never raised: the change it reports has happened."""
        event = self.event(actor, action, target, **fields)
        try:
            await self.publish(event)
        except Exception as exc:
            log.error(
                "audit event not published",
                extra={"event": msgspec.to_builtins(event), "error": repr(exc)},
            )
        return event
