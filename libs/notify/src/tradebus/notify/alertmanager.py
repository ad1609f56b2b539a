"""Alertmanager's webhook payload (version 4) and its text for the operators (pure).

Source: Alertmanager's documentation, "Configuration" > ``<webhook_config>``
(https://prometheus.io/docs/alerting/latest/configuration/#webhook_config): the
receiver POSTs one JSON object per alert group::

    {"version": "4", "groupKey": "...", "truncatedAlerts": 0,
     "status": "firing" | "resolved", "receiver": "...",
     "groupLabels": {...}, "commonLabels": {...}, "commonAnnotations": {...},
     "externalURL": "...",
     "alerts": [{"status": "firing" | "resolved", "labels": {...}, "annotations": {...},
                 "startsAt": "<RFC 3339>", "endsAt": "<RFC 3339>",
                 "generatorURL": "...", "fingerprint": "..."}]}

tradebus' rules (deploy/prometheus) label each alert with ``severity`` and annotate
it with ``summary`` and ``description``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

AlertStatus = Literal["firing", "resolved"]
MAX_ALERTS_LISTED = 20
"""Alerts of one group written out; the rest are counted."""


class Alert(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One alert of a group."""

    status: AlertStatus
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    starts_at: str = ""
    ends_at: str = ""
    generator_url: str = msgspec.field(default="", name="generatorURL")
    fingerprint: str = ""


class WebhookPayload(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """An alert group as Alertmanager posts it (version 4)."""

    version: Literal["4"]
    status: AlertStatus
    alerts: list[Alert]
    receiver: str = ""
    group_key: str = ""
    truncated_alerts: int = 0
    group_labels: dict[str, str] = {}
    common_labels: dict[str, str] = {}
    common_annotations: dict[str, str] = {}
    external_url: str = msgspec.field(default="", name="externalURL")


_decoder = msgspec.json.Decoder(WebhookPayload)


class PayloadError(ValueError):
    """The body is not an Alertmanager version 4 payload; the message names the field."""


def decode_payload(body: bytes) -> WebhookPayload:
    """Parse a webhook body.

    Raises
    ------
    PayloadError
        If it is not JSON of :class:`WebhookPayload` (msgspec names the bad field,
        e.g. ``Expected `str`, got `int` - at `$.alerts[0].status```).
    """
    try:
        return _decoder.decode(body)
    except msgspec.MsgspecError as exc:
        raise PayloadError(str(exc)) from None


def severity(payload: WebhookPayload) -> str:
    """The group's severity: the common label, else the highest of its alerts
    (critical > warning > info > anything else), else ``none``."""
    if "severity" in payload.common_labels:
        return payload.common_labels["severity"]
    order = {"critical": 0, "warning": 1, "info": 2}
    found = [a.labels["severity"] for a in payload.alerts if "severity" in a.labels]
    return min(found, key=lambda s: order.get(s, 3)) if found else "none"


def alert_line(alert: Alert) -> str:
    """``[FIRING] TradebusServiceDown (job=execution): execution is down -- <description>``."""
    name = alert.labels.get("alertname", "alert")
    where = ", ".join(
        f"{k}={v}" for k, v in sorted(alert.labels.items()) if k not in ("alertname", "severity")
    )
    summary = alert.annotations.get("summary", "")
    description = alert.annotations.get("description", "")
    text = f"[{alert.status.upper()}] {name}" + (f" ({where})" if where else "")
    if summary:
        text += f": {summary}"
    if description and description != summary:
        text += f" -- {description}"
    return text


def alert_message(payload: WebhookPayload) -> tuple[str, str, str]:
    """``(title, body, notify_type)`` of an alert group: title
    ``[FIRING:2] critical TradebusServiceDown``, one line per alert
    (:func:`alert_line`), Apprise type ``failure`` (critical), ``warning`` (other
    firing) or ``success`` (resolved)."""
    level = severity(payload)
    name = payload.group_labels.get("alertname") or payload.common_labels.get("alertname", "")
    if not name and payload.alerts:
        name = payload.alerts[0].labels.get("alertname", "alerts")
    title = f"[{payload.status.upper()}:{len(payload.alerts)}] {level} {name}".rstrip()
    lines = [alert_line(a) for a in payload.alerts[:MAX_ALERTS_LISTED]]
    more = max(0, len(payload.alerts) - MAX_ALERTS_LISTED) + payload.truncated_alerts
    if more > 0:
        lines.append(f"... and {more} more")
    if payload.status == "resolved":
        kind = "success"
    else:
        kind = "failure" if level == "critical" else "warning"
    return title, "\n".join(lines) or "(no alerts)", kind
