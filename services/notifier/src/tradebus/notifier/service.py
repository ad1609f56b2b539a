"""The notifier's work, wired to nothing: bus messages in, messages to channels out.

:class:`Notifier` takes the bus messages (:meth:`on_bus_message`: the subject says
which kind), turns them into notices (:mod:`tradebus.notify.events`), drops those
the user muted, queues the rest in the outbox, and every ``batch_seconds``
(:meth:`flush`) sends one message per user to that user's channels only. Alert
groups from Alertmanager (:meth:`on_alert_group`) go at once to the operators'
channels. Deliveries run as background tasks: a slow or failing channel never
holds up the bus subscription (each is retried, then counted as failed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge

from tradebus.common import subjects
from tradebus.common.codec import (
    decode_bot_status_changed,
    decode_event,
    decode_exec_alert,
    decode_recon_report,
)
from tradebus.common.messages import AccountHalted, OrderFilled
from tradebus.notify.alertmanager import WebhookPayload, alert_message
from tradebus.notify.channels import UserChannels
from tradebus.notify.delivery import Deliverer
from tradebus.notify.events import (
    BotWatch,
    Notice,
    drift_notice,
    fill_notice,
    halted_notice,
    killswitch_notice,
)
from tradebus.notify.outbox import Outbox

log = logging.getLogger(__name__)

KV_KILLSWITCH_PREFIX = subjects.kv_subject(subjects.KV_KILLSWITCH, "")
"""Subject prefix of a put to KV ``killswitch`` (its key follows)."""
SUBSCRIPTIONS = (
    subjects.EXEC_EVT_ALL,
    subjects.EXEC_ALERT_ALL,
    subjects.RECON_ALERT_ALL,
    subjects.BOT_STATUS_ALL,
    subjects.kv_subject(subjects.KV_KILLSWITCH, ">"),
)
"""What the notifier listens to (core NATS; its NATS user may read only these)."""


class NotifierMetrics:
    """``tradebus_notifier_*`` metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.notices = Counter(
            "tradebus_notifier_notices",
            "Notices made from bus events, by kind and result (queued, muted, no_channel)",
            ["kind", "result"],
            registry=registry,
        )
        self.deliveries = Counter(
            "tradebus_notifier_deliveries",
            "Messages sent to one channel, by scope (operators, users) and result"
            " (delivered, failed)",
            ["scope", "result"],
            registry=registry,
        )
        self.alert_groups = Counter(
            "tradebus_notifier_alert_groups",
            "Alert groups received from Alertmanager, by status (firing, resolved)",
            ["status"],
            registry=registry,
        )
        self.pending = Gauge(
            "tradebus_notifier_pending_notices",
            "Notices waiting for the next digest window",
            registry=registry,
        )
        self.ready = Gauge(
            "tradebus_notifier_ready",
            "1 once it listens on the bus and for Alertmanager",
            registry=registry,
        )

    def delivered(self, scope: str, ok: bool) -> None:
        """One channel's outcome (:class:`~tradebus.notify.delivery.Deliverer` hook)."""
        self.deliveries.labels(scope=scope, result="delivered" if ok else "failed").inc()


class Recipients(msgspec.Struct, kw_only=True):
    """Who hears about what now: the operators' URLs, each user's settings, the owner of
    each account (for messages that name only an account)."""

    operators: list[str] = []
    users: dict[str, UserChannels] = {}
    owners: dict[str, str] = {}


class Notifier:
    """See the module docstring. ``recipients`` may be replaced at any time (settings
    read again)."""

    def __init__(
        self, recipients: Recipients, deliverer: Deliverer, metrics: NotifierMetrics
    ) -> None:
        self.recipients = recipients
        self._deliverer = deliverer
        self._metrics = metrics
        self._outbox = Outbox()
        self._bots = BotWatch()
        self._tasks: set[asyncio.Task[int]] = set()

    # ---- bus ----------------------------------------------------------------

    def on_bus_message(self, subject: str, data: bytes, headers: dict[str, str] | None) -> None:
        """Turn one bus message into notices and queue those wanted. A message that
        does not decode is logged (subject only) and dropped."""
        try:
            notices = self._notices(subject, data, headers or {})
        except (msgspec.MsgspecError, subjects.SubjectError) as exc:
            log.warning("message not understood", extra={"subject": subject, "error": str(exc)})
            return
        for notice in notices:
            self.queue(notice)

    def _notices(self, subject: str, data: bytes, headers: dict[str, str]) -> list[Notice]:
        if subject.startswith("exec.evt."):
            event = decode_event(data)
            return [fill_notice(event)] if isinstance(event, OrderFilled) else []
        if subject.startswith("exec.alert."):
            alert = decode_exec_alert(data)
            return [halted_notice(alert)] if isinstance(alert, AccountHalted) else []
        if subject.startswith("recon.alert."):
            report = decode_recon_report(data)
            owner = self.recipients.owners.get(report.account)
            if owner is None or report.status == "ok":
                return []
            return [drift_notice(owner, report)]
        if subject.startswith("bot.status."):
            return self._bots.update(decode_bot_status_changed(data).status)
        if subject.startswith(KV_KILLSWITCH_PREFIX):
            if headers.get("KV-Operation") in ("DEL", "PURGE"):
                return []  # released
            return self._killswitch(subject.removeprefix(KV_KILLSWITCH_PREFIX), data)
        return []

    def _killswitch(self, key: str, data: bytes) -> list[Notice]:
        reason = data.decode("utf-8", "replace")
        if key == "global":
            users = sorted(self.recipients.users)
        else:
            owner = self.recipients.owners.get(key.removeprefix("account."))
            users = [] if owner is None else [owner]
        return [killswitch_notice(user, key, reason) for user in users]

    def queue(self, notice: Notice) -> None:
        """Queue ``notice`` unless its user has no channel or muted it (counted)."""
        settings = self.recipients.users.get(notice.user)
        if settings is None or not settings.channels:
            result = "no_channel"
        elif not settings.wants(notice.kind, notice.bot):
            result = "muted"
        else:
            result = "queued"
            self._outbox.add(notice)
        self._metrics.notices.labels(kind=notice.kind, result=result).inc()
        self._metrics.pending.set(self._outbox.pending())

    # ---- sending ------------------------------------------------------------

    def flush(self) -> None:
        """Send what waits: one message per user, to that user's channels only."""
        for message in self._outbox.drain():
            settings = self.recipients.users.get(message.user)
            if settings is None or not settings.channels:
                continue
            self._spawn(
                self._deliverer.deliver(
                    list(settings.channels),
                    message.title,
                    message.body,
                    message.notify_type,
                    audience="users",
                    who=message.user,
                )
            )
        self._metrics.pending.set(0)

    def on_alert_group(self, payload: WebhookPayload) -> int:
        """Send an Alertmanager alert group to the operators' channels (in the
        background); the number of channels it goes to."""
        self._metrics.alert_groups.labels(status=payload.status).inc()
        urls = list(self.recipients.operators)
        if not urls:
            log.warning("alert group received but no operator channel is set")
            return 0
        title, body, notify_type = alert_message(payload)
        self._spawn(
            self._deliverer.deliver(
                urls, title, body, notify_type, audience="operators", who="operators"
            )
        )
        return len(urls)

    def _spawn(self, work: Coroutine[Any, Any, int]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float = 10.0) -> None:
        """Flush, then wait (at most ``timeout`` seconds) for deliveries under way."""
        self.flush()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
