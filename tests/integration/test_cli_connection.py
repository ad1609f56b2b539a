"""Which NATS server the CLI talks to, and what it says when that goes wrong (issue 20, item 3).

Against real nats-servers: a plain one (``nats_url``) and one in operator mode as
the demo runs it (``secure_nats``). The demo's connection file is written by the
demo's own writer (:func:`tradebus.cli.connection.write_connection`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import tradebus
from tests.support.secure_nats import SecureNats
from tradebus.cli.connection import (
    DEFAULT_NATS_URL,
    DemoConnection,
    find_demo,
    remove_connection,
    resolve_nats,
    write_connection,
)
from tradebus.cli.localstack import free_port


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in ``tmp_path`` (the demo's ``./var`` is found from the working directory),
    with no NATS settings in the environment."""
    monkeypatch.chdir(tmp_path)
    for name in ("NATS_URL", "TRADEBUS_NATS_CREDS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


async def test_without_flags_the_cli_uses_the_running_demo_and_its_credentials(
    secure_nats: SecureNats, in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    operator = str(secure_nats.creds("operator"))
    path = write_connection(
        in_tmp / "var",
        DemoConnection(nats_url=secure_nats.url, nats_creds=operator, pid=os.getpid()),
    )
    assert path == in_tmp / "var" / "demo" / "connection.json"
    assert path.stat().st_mode & 0o077 == 0  # it names credentials: the owner's only

    # operator mode: without the demo's credentials the server would refuse us
    code, out, err = await tradebus(capsys, "bots", "list")
    assert err.splitlines() == [
        f"tradebus: using the running demo's NATS at {secure_nats.url} as {operator}"
        " (var/demo/connection.json)"
    ]
    assert (code, out.strip()) == (
        1,
        f"tradebus: no strategy host answered at {secure_nats.url} (is one running?)",
    )

    # the demo ended: its file is gone, and so is the discovery
    remove_connection(in_tmp / "var")
    assert find_demo(in_tmp / "var") is None


def test_a_file_left_by_a_demo_that_is_gone_is_ignored(in_tmp: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    write_connection(
        in_tmp / "var", DemoConnection(nats_url="nats://127.0.0.1:1", pid=int(dead.stdout))
    )
    assert find_demo(in_tmp / "var") is None
    (in_tmp / "var" / "demo" / "connection.json").write_text("{not json")
    assert find_demo(in_tmp / "var") is None


def test_the_default_server_is_named_on_stderr(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(nats_url="", nats_creds="")
    resolve_nats(args, in_tmp / "var")
    assert (args.nats_url, args.nats_creds) == (DEFAULT_NATS_URL, "")
    where = in_tmp / "var" / "demo" / "connection.json"
    assert capsys.readouterr().err == (
        f"tradebus: no --nats-url, NATS_URL or running demo ({where}): using {DEFAULT_NATS_URL}\n"
    )
    given = argparse.Namespace(nats_url="nats://example:4222", nats_creds="")
    resolve_nats(given, in_tmp / "var")  # said on the command line: used, nothing said
    assert given.nats_url == "nats://example:4222" and capsys.readouterr().err == ""


async def test_no_strategy_host_is_an_error_not_zero_bots(
    nats_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await tradebus(capsys, "bots", "list", "--nats-url", nats_url)
    assert (code, out.strip()) == (
        1,
        f"tradebus: no strategy host answered at {nats_url} (is one running?)",
    )


async def test_refused_credentials_say_so(
    secure_nats: SecureNats, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await tradebus(capsys, "bots", "list", "--nats-url", secure_nats.url)
    assert (code, out.strip()) == (
        1,
        f"tradebus: NATS refused the credentials (authorization violation) at {secure_nats.url}",
    )
    assert "NoServersError" not in out + err


async def test_an_unreachable_server_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    for argv in (("bots", "list"), ("killswitch", "status"), ("groups", "status", "g")):
        code, out, err = await tradebus(capsys, *argv, "--nats-url", url)
        assert (code, out.strip()) == (
            1,
            f"tradebus: cannot reach NATS at {url}: connection refused",
        )
        assert "Traceback" not in err
