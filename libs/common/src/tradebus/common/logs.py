"""Structured logging: one JSON object per line on stderr, secrets redacted.

``log.info("order placed", extra={"intent_id": ...})`` becomes
``{"ts":...,"level":"info","service":...,"logger":...,"msg":"order placed","intent_id":...}``
(``ts`` in UTC with milliseconds, ``2026-01-31T12:00:00.123Z``; an exception's
traceback in ``exc``). Values that look like URLs with passwords are redacted.

The formatting is python-json-logger's (``MsgspecFormatter``: the ``extra`` fields
merged in, msgspec's encoder, ``Decimal`` as text); this module only names the
fields and redacts.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from pythonjsonlogger.msgspec import MsgspecFormatter

from tradebus.common.config import redact_url

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
"""A record's own attributes: everything else on a record is an ``extra`` field."""

FIELDS = ("ts", "level", "service", "logger", "msg")
"""The fields every line starts with, in this order; ``extra`` fields and ``exc`` follow."""


class JsonFormatter(MsgspecFormatter):
    """Format records as single-line JSON with the ``extra`` fields merged in (module
    docstring); string values are passed through :func:`~tradebus.common.config.redact_url`.
    """

    def __init__(self, service: str) -> None:
        super().__init__(
            ["asctime", "levelname", "name", "message"],
            rename_fields={
                "asctime": "ts",
                "levelname": "level",
                "name": "logger",
                "message": "msg",
                "exc_info": "exc",
            },
            static_fields={"service": service},
            reserved_attrs=sorted(_STANDARD),
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """``ts``: the record's time in UTC, ``2026-01-31T12:00:00.123Z``."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        """Lower-case level, the fixed fields first, every string redacted."""
        log_data["level"] = str(log_data["level"]).lower()
        ordered = {key: log_data.pop(key) for key in FIELDS if key in log_data}
        ordered.update(log_data)
        return {k: redact_url(v) if isinstance(v, str) else v for k, v in ordered.items()}


def setup_logging(service: str, level: str = "info") -> None:
    """Send every log record of this process to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("nats").setLevel(logging.WARNING)
