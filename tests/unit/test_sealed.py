"""Credentials sealed to execution's public key: only its private key opens them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tradebus.cli.main import main
from tradebus.common.sealed import (
    SealedError,
    generate_private_key,
    load_private_key,
    load_public_key,
    open_sealed,
    public_key_b64,
    seal,
    write_key_pair,
)

CREDS = {"apiKey": "the-api-key-123", "secret": "the-secret-456", "password": "pass-789"}


def test_round_trip_through_key_files(tmp_path: Path) -> None:
    private_path, public_path, created = write_key_pair(tmp_path / "keys")
    assert created
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    box = seal(load_public_key(public_path), CREDS)
    assert all(v.encode() not in box for v in CREDS.values())
    assert open_sealed(load_private_key(private_path), box) == CREDS
    # each seal is fresh (an ephemeral key per box): equal inputs never look equal
    assert seal(load_public_key(public_path), CREDS) != box


def test_key_pair_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["seal-keys", "--dir", str(tmp_path)])
    assert done.value.code == 0
    private = (tmp_path / "execution.key").read_text()
    public = (tmp_path / "execution.pub").read_text()
    with pytest.raises(SystemExit) as again:
        main(["seal-keys", "--dir", str(tmp_path)])
    assert again.value.code == 0
    assert "kept (already there)" in capsys.readouterr().out
    assert (tmp_path / "execution.key").read_text() == private
    assert (tmp_path / "execution.pub").read_text() == public
    assert private.strip() not in capsys.readouterr().out
    # a lost public file is made again from the private key, the same
    (tmp_path / "execution.pub").unlink()
    write_key_pair(tmp_path)
    assert (tmp_path / "execution.pub").read_text() == public
    # a public file of another pair is refused, not replaced
    (tmp_path / "execution.pub").write_text(public_key_b64(generate_private_key()) + "\n")
    with pytest.raises(SealedError, match="does not match the private key"):
        write_key_pair(tmp_path)


def test_the_notifier_has_a_pair_of_its_own(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as done:
        main(["seal-keys", "--dir", str(tmp_path), "--name", "notifier"])
    assert done.value.code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notifier.key", "notifier.pub"]
    assert stat.S_IMODE((tmp_path / "notifier.key").stat().st_mode) == 0o600
    execution, _, _ = write_key_pair(tmp_path)
    box = seal(load_public_key(tmp_path / "notifier.pub"), {"1": "tgram://bot-token/123"})
    with pytest.raises(SealedError):
        open_sealed(load_private_key(execution), box)
    assert open_sealed(load_private_key(tmp_path / "notifier.key"), box) == {
        "1": "tgram://bot-token/123"
    }


def test_another_key_cannot_open_it() -> None:
    mine, other = generate_private_key(), generate_private_key()
    box = seal(public_key_b64(mine), CREDS)
    with pytest.raises(SealedError) as refused:
        open_sealed(other, box)
    assert "sealed to another key" in str(refused.value)
    assert all(v not in str(refused.value) for v in CREDS.values())


def test_tampered_or_truncated_ciphertext_is_refused() -> None:
    key = generate_private_key()
    box = bytearray(seal(public_key_b64(key), CREDS))
    box[-5] ^= 0x01
    with pytest.raises(SealedError, match="changed or truncated"):
        open_sealed(key, bytes(box))
    good = seal(public_key_b64(key), CREDS)
    for cut in (good[:10], good[:-1], b""):
        with pytest.raises(SealedError, match="changed or truncated"):
            open_sealed(key, cut)


def test_a_box_that_is_not_credentials_is_refused() -> None:
    from nacl.public import SealedBox

    key = generate_private_key()
    box = SealedBox(key.public_key).encrypt(b'{"apiKey": 5, "secret": "hidden-value"}')
    with pytest.raises(SealedError) as refused:
        open_sealed(key, bytes(box))
    assert "hidden-value" not in str(refused.value)


def test_bad_keys_and_credentials_are_named(tmp_path: Path) -> None:
    with pytest.raises(SealedError, match="public key: not base64"):
        seal("not a key!", CREDS)
    with pytest.raises(SealedError, match="public key: 3 bytes"):
        seal("AAAA", CREDS)
    public = public_key_b64(generate_private_key())
    with pytest.raises(SealedError, match="no credentials"):
        seal(public, {})
    with pytest.raises(SealedError, match="credential 'secret' is empty"):
        seal(public, {"apiKey": "k", "secret": ""})
    (tmp_path / "execution.key").write_text("short\n")
    with pytest.raises(SealedError, match=r"private key file .*execution.key: not base64"):
        load_private_key(tmp_path / "execution.key")
    with pytest.raises(SealedError, match="cannot read private key file"):
        load_private_key(tmp_path / "missing.key")
