"""``deploy/nats/nats.conf`` is what ``tradebus nats-conf`` makes of the shipped accounts file.

The config is generated (:mod:`tradebus.cli.natsconf`); this fails when someone edits one
without the other, or adds a person to ``deploy/config/accounts.yaml`` without
regenerating it. Its behaviour under a real nats-server is tested in
tests/integration/test_nats_permissions.py and tests/security/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tradebus.cli.main import main
from tradebus.cli.natsauth import conf_users
from tradebus.cli.natsconf import people_of, render
from tradebus.common.config import ConfigError

REPO = Path(__file__).resolve().parents[2]
ACCOUNTS = REPO / "deploy" / "config" / "accounts.yaml"
CONF = REPO / "deploy" / "nats" / "nats.conf"


def test_the_committed_config_is_the_generated_one() -> None:
    assert CONF.read_text() == render(people_of(ACCOUNTS)), (
        "deploy/nats/nats.conf is stale: run "
        "`tradebus nats-conf -f deploy/config/accounts.yaml -o deploy/nats/nats.conf`"
    )


def test_each_person_has_an_account_of_their_own_importing_only_their_subjects() -> None:
    text = render(["alice", "bob"])
    assert set(conf_users_of(text)) == {
        "marketdata", "strategy", "execution", "reconciler", "operator", "alice", "bob",
    }  # fmt: skip
    alice = text[text.index("USER_alice: {") : text.index("# bob: sends")]
    assert 'subject: "person.intent.alice.>"}, to: "intent.alice.>"' in alice
    assert "bob" not in alice and "jetstream" not in alice and "exports" not in alice
    assert "max_payload: 8192" in alice
    # the system account exports to each person only what is theirs
    assert '{service: "person.intent.bob.>", accounts: [USER_bob]}' in text
    assert '{stream: "exec.evt.bob.>", accounts: [USER_bob]}' in text


def conf_users_of(text: str) -> dict[str, str]:
    return dict(re.findall(r"\{user: ([A-Za-z0-9_-]+), password: \$([A-Z0-9_]+)", text))


def test_names_that_cannot_be_nats_users_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "accounts.yaml"
    bad.write_text("accounts:\n  - {id: a-1, user: OPERATOR}\n  - {id: a-2, user: 'a b'}\n")
    with pytest.raises(ConfigError, match=r"users \['OPERATOR', 'a b'\]"):
        people_of(bad)


def test_the_command_writes_the_config_for_an_accounts_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text("accounts:\n  - {id: zoe-paper, user: zoe}\n")
    out = tmp_path / "conf" / "nats.conf"
    with pytest.raises(SystemExit) as exit_:
        main(["nats-conf", "-f", str(accounts), "-o", str(out)])
    assert exit_.value.code == 0
    assert "1 people (zoe)" in capsys.readouterr().out
    assert set(conf_users(out)) == {
        "marketdata", "strategy", "execution", "reconciler", "operator", "zoe",
    }  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        main(["nats-conf", "-f", str(tmp_path / "missing.yaml"), "-o", str(out)])
    assert exit_.value.code == 2
