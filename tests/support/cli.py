"""The ``tradebus`` command line, run in-process by tests."""

from __future__ import annotations

import asyncio

import pytest

from tradebus.cli.main import main


async def tradebus(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``tradebus ARGV`` in a thread (the command runs its own event loop); its exit
    status, stdout and stderr."""

    def call() -> int:
        try:
            main(list(argv))
        except SystemExit as exc:
            return int(exc.code or 0)
        raise AssertionError("tradebus did not exit")

    code = await asyncio.to_thread(call)
    out = capsys.readouterr()
    return code, out.out, out.err
