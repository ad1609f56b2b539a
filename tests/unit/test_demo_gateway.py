"""The demo's gateway settings: the web page is served once it is built (issue 17)."""

from __future__ import annotations

from pathlib import Path

from tradebus.cli.demo_gateway import REPO, ServiceKeys, built_page, gateway_env

KEYS = ServiceKeys(
    seal_private=Path("/k/execution.key"),
    seal_public=Path("/k/execution.pub"),
    token_secret=Path("/k/token.secret"),
    notify_private=Path("/k/notifier.key"),
    notify_public=Path("/k/notifier.pub"),
)


def test_the_page_is_found_only_once_built(tmp_path: Path) -> None:
    assert built_page(tmp_path) is None
    dist = tmp_path / "web" / "dist"
    dist.mkdir(parents=True)
    assert built_page(tmp_path) is None, "a dist without index.html is no page"
    (dist / "index.html").write_text("<!doctype html>")
    assert built_page(tmp_path) == dist
    assert (REPO / "pyproject.toml").is_file(), "REPO must be the repository root"


def test_the_gateway_serves_the_built_page(tmp_path: Path) -> None:
    without = gateway_env("postgresql://x", 8080, KEYS, None)
    assert "TRADEBUS_WEB_DIR" not in without
    with_page = gateway_env("postgresql://x", 8080, KEYS, None, tmp_path)
    assert with_page["TRADEBUS_WEB_DIR"] == str(tmp_path)
    assert {k: v for k, v in with_page.items() if k != "TRADEBUS_WEB_DIR"} == without


def test_the_gateway_seals_channels_to_the_notifiers_key() -> None:
    env = gateway_env("postgresql://x", 8080, KEYS, None)
    assert env["TRADEBUS_NOTIFY_PUBLIC_KEY_FILE"] == "/k/notifier.pub"
    assert "/k/notifier.key" not in env.values()
