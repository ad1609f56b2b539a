"""The credentials compose's nats-box mounts let a person publish their manual intents, and
only theirs, on the real server nats-init configures.

compose: ``nats-init`` (``TRADEBUS_PEOPLE_CREDS_HOURS``) writes ``people/<name>.creds``
into the volume ``nats-auth``; ``nats-box`` mounts that folder at ``/creds``, so
``docker compose run --rm nats-box nats --creds /creds/alice.creds pub intent.alice.manual
'{...}'`` works (README "Manual orders"). Here the same one-shot runs in a temp dir, a
nats-server (the version compose runs) starts with the config it wrote, and alice
connects with the file it issued, as the NATS CLI would. Her intent arrives in the
system account as ``person.intent.alice.manual`` (her account's service import), where
execution's stream ``INTENTS_alice`` takes it; a publish for bob is refused.
"""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.errors
import pytest

from tradebus.cli.localstack import LocalNats
from tradebus.common.config import ConfigError
from tradebus.natsauth.init import NatsInitSettings, write_people_creds
from tradebus.natsauth.init import run as run_nats_init

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = ROOT / "deploy" / "config" / "accounts.yaml"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """nats-server running nats-init's config; ``(url, identities dir)``."""
    auth = tmp_path / "auth"
    done = run_nats_init(
        NatsInitSettings(
            nats_dir=str(auth),
            accounts_file=str(ACCOUNTS),
            resolver_dir=str(tmp_path / "jwt"),
            people_creds_hours=1,
        )
    )
    local = LocalNats(tmp_path / "nats", done.conf)
    try:
        yield local.start(), auth
    finally:
        local.stop()


async def test_a_person_publishes_their_manual_intent_with_the_mounted_creds(
    server: tuple[str, Path],
) -> None:
    url, auth = server
    people = auth / "people"
    assert sorted(p.name for p in people.iterdir()) == [
        "alice.creds",
        "bob.creds",
        "carol.creds",
        "dave.creds",
    ]
    creds = people / "alice.creds"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600

    operator = await nats.connect(url, user_credentials=str(auth / "creds" / "operator.creds"))
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc).lower())

    alice = await nats.connect(url, user_credentials=str(creds), error_cb=on_error)
    try:
        arrived = await operator.subscribe("person.intent.>")
        await operator.flush()
        intent = b'{"type":"PlaceOrder","intent_id":"alice-manual-1"}'
        # the import's interest reaches alice's account a moment after the SUB
        for _ in range(50):
            await alice.publish("intent.alice.manual", intent)
            await alice.flush()
            try:
                msg = await arrived.next_msg(timeout=0.1)
                break
            except nats.errors.TimeoutError:
                continue
        else:
            pytest.fail("alice's intent never reached the system account")
        assert (msg.subject, msg.data) == ("person.intent.alice.manual", intent)
        assert not errors, errors

        await alice.publish("intent.bob.manual", b"{}")
        await alice.flush()
        await asyncio.sleep(0.2)
        assert any("permissions violation" in e for e in errors), errors
        while True:  # nothing of bob's came through alice
            try:
                extra = await arrived.next_msg(timeout=0.2)
            except nats.errors.TimeoutError:
                break
            assert extra.subject == "person.intent.alice.manual", extra.subject
    finally:
        await alice.close()
        await operator.close()


def test_people_creds_need_a_lifetime_and_drop_who_left(tmp_path: Path) -> None:
    done = run_nats_init(NatsInitSettings(nats_dir=str(tmp_path / "auth")))
    with pytest.raises(ConfigError, match="TRADEBUS_PEOPLE_CREDS_HOURS=-1"):
        write_people_creds(done, -1)
    gone = tmp_path / "auth" / "people" / "zoe.creds"  # issued when zoe was in the file
    gone.parent.mkdir(parents=True)
    gone.write_text("old")
    assert write_people_creds(done, 1) == {}  # no people preloaded: nothing written,
    assert gone.parent.is_dir() and not gone.exists()  # the folder nats-box mounts kept
