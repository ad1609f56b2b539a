"""The services' JSON log lines (:mod:`tradebus.common.logs`, python-json-logger).

Every line is one JSON object: ``ts`` (UTC, milliseconds, ``Z``), ``level`` (lower
case), ``service``, ``logger``, ``msg``, then the record's ``extra`` fields and, for an
exception, ``exc``; a URL's password never reaches a line.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from decimal import Decimal

import pytest

from tradebus.common.logs import JsonFormatter


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter("execution"))
    log = logging.getLogger("tradebus.test_logs")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG)
    try:
        yield log, out
    finally:
        log.handlers.clear()


def records(out: io.StringIO) -> list[dict]:
    text = out.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_a_line_has_the_fields_in_order_then_the_extras(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    log, out = lines
    log.info("order %s placed", "a-1", extra={"intent_id": "a-1", "qty": Decimal("0.0010"), "n": 3})
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert list(record) == ["ts", "level", "service", "logger", "msg", "intent_id", "qty", "n"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["ts"]), record["ts"]
    assert record["level"] == "info" and record["service"] == "execution"
    assert record["logger"] == "tradebus.test_logs" and record["msg"] == "order a-1 placed"
    assert record["qty"] == "0.0010"  # money stays exact text
    assert '"level":"info"' in line  # compact: tests grep for it


def test_url_passwords_are_redacted_in_the_message_and_the_extras(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    log, out = lines
    log.warning(
        "cannot reach postgresql://tradebus:hunter2@db:5432/tradebus",
        extra={"url": "nats://svc:s3cret@nats:4222", "_private": "not shown"},
    )
    assert "hunter2" not in out.getvalue() and "s3cret" not in out.getvalue()
    (record,) = records(out)
    assert record["msg"] == "cannot reach postgresql://tradebus:***@db:5432/tradebus"
    assert record["url"] == "nats://svc:***@nats:4222"
    assert record["level"] == "warning" and "_private" not in record


def test_an_exception_is_one_line_with_its_traceback_in_exc(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    log, out = lines
    try:
        raise ValueError("bad value")
    except ValueError:
        log.exception("handler failed")
    (record,) = records(out)
    assert record["level"] == "error" and record["msg"] == "handler failed"
    assert record["exc"].startswith("Traceback") and "ValueError: bad value" in record["exc"]
    assert "exc_info" not in record
