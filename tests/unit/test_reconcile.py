"""Reconciliation arithmetic (tradebus.reconciler.core): drift and per-asset tolerance."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Literal

from tradebus.common.messages import AssetBalance
from tradebus.reconciler.core import reconcile, short


def bal(asset: str, total: str) -> AssetBalance:
    return AssetBalance(asset=asset, total=D(total), free=D(total), locked=D(0))


TOL = {"BTC": D("0.0001"), "DEFAULT": D("0.01")}


def test_within_tolerance_is_ok() -> None:
    report = reconcile(
        "a",
        [bal("BTC", "0.00425"), bal("USDT", "100.005")],
        {"BTC": D("0.0042"), "USDT": D("100")},
        TOL,
        7,
        1,
    )
    assert report.status == "ok"
    assert [(r.asset, r.drift, r.tolerance, r.ok) for r in report.rows] == [
        ("BTC", D("0.00005"), D("0.0001"), True),
        ("USDT", D("0.005"), D("0.01"), True),
    ]
    assert report.ledger_watermark == 7


def test_beyond_tolerance_is_drift() -> None:
    # seed 001's example: exchange 0.0042 BTC, local stats 0.0040, tolerance 0.0001
    report = reconcile("a", [bal("BTC", "0.0042")], {"BTC": D("0.0040")}, TOL, 0, 1)
    assert report.status == "drift"
    assert report.rows[0].drift == D("0.0002") and not report.rows[0].ok


def test_an_asset_missing_on_one_side_counts_as_zero() -> None:
    report = reconcile("a", [bal("ETH", "1")], {"SOL": D("2")}, {}, 0, 1)
    assert [(r.asset, r.venue_total, r.ledger_total, r.drift) for r in report.rows] == [
        ("ETH", D(1), D(0), D(1)),
        ("SOL", D(0), D(2), D(-2)),
    ]
    assert report.status == "drift"  # no tolerance given: exact


def test_negative_drift_uses_its_magnitude() -> None:
    report = reconcile("a", [bal("BTC", "0.99995")], {"BTC": D(1)}, TOL, 0, 1)
    assert report.status == "ok"


def test_a_big_run_replies_with_its_drifting_reports_only() -> None:
    """``ctl.recon.run``'s reply must fit one NATS message (1 MiB) whatever the accounts."""
    from tradebus.common.codec import encode
    from tradebus.common.messages import RECON_REPLY_REPORTS, ReconReport
    from tradebus.reconciler.bootstrap import run_reply
    from tradebus.reconciler.service import ReconRun

    def report(i: int, status: Literal["ok", "drift"]) -> ReconReport:
        return ReconReport(account=f"a{i}", status=status, rows=[], ledger_watermark=1, ts_event=1)

    small = [report(i, "ok") for i in range(3)] + [report(3, "drift")]
    assert run_reply(ReconRun(small, [])).reports == small
    big = [report(i, "drift" if i % 1000 == 0 else "ok") for i in range(10_000)]
    reply = run_reply(ReconRun(big, []))
    assert (reply.accounts, reply.drifting) == (10_000, 10)
    assert [r.account for r in reply.reports] == [f"a{i}" for i in range(0, 10_000, 1000)]
    assert len(reply.reports) <= RECON_REPLY_REPORTS and len(encode(reply)) < 1024 * 1024


def test_a_short_report_keeps_only_the_drifting_assets() -> None:
    venue = [bal("BTC", "0.5"), bal("ETH", "2"), bal("USDT", "100")]
    ledger = {"BTC": D("0.5"), "ETH": D("1.9"), "USDT": D("100")}
    report = reconcile("a", venue, ledger, TOL, 7, 1)
    assert [r.asset for r in report.rows] == ["BTC", "ETH", "USDT"] and report.detailed
    brief = short(report)
    assert (brief.status, brief.detailed) == ("drift", False)
    assert [(r.asset, r.drift) for r in brief.rows] == [("ETH", D("0.1"))]
    ok = short(reconcile("a", venue[:1], ledger | {"ETH": D(0), "USDT": D(0)}, TOL, 7, 1))
    assert (ok.status, ok.rows) == ("ok", [])
