"""The NATS identities without a server: JWTs, signatures, permissions, the commands.

What nats-server does with them is in tests/integration/test_nats_permissions.py,
tests/security/ and tests/gateway/test_nats_credentials.py.
"""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from tradebus.cli.main import main
from tradebus.common.config import ConfigError
from tradebus.common.subjects import SubjectError
from tradebus.natsauth import accounts, permissions
from tradebus.natsauth.claims import (
    AccountNats,
    Claims,
    ClaimsError,
    KeyPair,
    OperatorNats,
    UserNats,
    decode,
    encode,
    format_creds,
    parse_creds,
)
from tradebus.natsauth.identities import Identities, IdentityError, init_installation, people_of
from tradebus.natsauth.init import NatsInitSettings, parse_owner
from tradebus.natsauth.init import run as run_nats_init

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def identities() -> Identities:
    return Identities.generate()


def _json(part: str) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def _parts(token: str) -> tuple[dict[str, object], dict[str, object]]:
    """The header and the claims of a JWT, as JSON objects (no signature check)."""
    header, claims, _ = token.split(".")
    return _json(header), _json(claims)


def test_a_jwt_is_signed_by_its_issuer_and_decodes_back(identities: Identities) -> None:
    token = accounts.tradebus_account_jwt(identities.operator_signing, identities.tradebus)
    header, raw = _parts(token)
    assert header == {"typ": "JWT", "alg": "ed25519-nkey"}
    assert raw["iss"] == identities.operator_signing.public_key
    assert raw["sub"] == identities.tradebus.public_key
    claims = decode(token, AccountNats)
    assert claims.name == "TRADEBUS" and claims.nats.type == "account"
    assert claims.nats.limits.disk_storage == -1  # JetStream on, in TRADEBUS only
    assert {e.subject for e in claims.nats.exports} == {
        "person.intent.>", "exec.evt.>", "exec.alert.>", "bot.status.>",
    }  # fmt: skip
    operator = decode(identities.operator_jwt(), OperatorNats)
    assert operator.iss == operator.sub == identities.operator.public_key
    assert operator.nats.system_account == identities.sys_account.public_key


def test_a_tampered_or_mis_signed_jwt_is_refused(identities: Identities) -> None:
    token = accounts.system_account_jwt(identities.operator_signing, identities.sys_account)
    header, claims, signature = token.split(".")
    raw = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    raw["name"] = "EVIL"
    forged = base64.urlsafe_b64encode(json.dumps(raw).encode()).rstrip(b"=").decode()
    with pytest.raises(ClaimsError, match="signature"):
        decode(f"{header}.{forged}.{signature}", AccountNats)
    with pytest.raises(ClaimsError):
        decode(token, UserNats)  # another kind
    with pytest.raises(ClaimsError, match="3 parts"):
        decode("abc", AccountNats)
    # only an operator key signs accounts; a user JWT's subject is a user key
    with pytest.raises(ClaimsError, match="signed by the operator signing key"):
        accounts.tradebus_account_jwt(identities.tradebus, identities.tradebus)
    bad = Claims(sub=identities.tradebus.public_key, nats=permissions.marketdata())
    with pytest.raises(ClaimsError, match="not an user public key"):
        encode(bad, identities.tradebus)


def test_two_jwts_of_one_subject_in_one_second_have_different_ids(
    identities: Identities,
) -> None:
    _, on = accounts.person_account_jwt(identities, "alice", now=1_000)
    _, off = accounts.person_account_jwt(identities, "alice", disabled=True, now=1_000)
    assert _parts(on)[1]["jti"] != _parts(off)[1]["jti"]


def test_creds_round_trip(identities: Identities) -> None:
    text = accounts.system_user_creds(identities.tradebus, "execution")
    token, key = parse_creds(text)
    assert key.kind == "user"
    claims = decode(token, UserNats)
    assert claims.sub == key.public_key and claims.iss == identities.tradebus.public_key
    assert claims.name == "execution"
    assert key.seed.decode() not in repr(key)
    with pytest.raises(ClaimsError):
        format_creds(token, identities.tradebus)
    with pytest.raises(ClaimsError, match="no 'BEGIN NATS USER JWT'"):
        parse_creds("nothing here")


def test_a_person_account_imports_only_their_own_subjects(identities: Identities) -> None:
    key, token = accounts.person_account_jwt(identities, "alice")
    assert key == accounts.person_account_key(identities, "alice").public_key  # derived
    assert key != accounts.person_account_key(identities, "bob").public_key
    claims = decode(token, AccountNats)
    imports = {(i.subject, i.local_subject, i.type) for i in claims.nats.imports}
    assert imports == {
        ("person.intent.alice.>", "intent.alice.>", "service"),
        ("exec.evt.alice.>", "", "stream"),
        ("exec.alert.alice.>", "", "stream"),
        ("bot.status.alice.>", "", "stream"),
    }
    assert all(i.account == identities.tradebus.public_key for i in claims.nats.imports)
    limits = claims.nats.limits
    assert limits.payload == 8 * 1024 and limits.exports == 0 and limits.leaf == 0
    assert limits.disk_storage == limits.mem_storage == 0  # no JetStream of her own
    assert claims.nats.signing_keys == [identities.people_signing.public_key]
    _, disabled = accounts.person_account_jwt(identities, "alice", disabled=True, now=5)
    off = decode(disabled, AccountNats).nats
    assert off.limits.conn == 0 and off.revocations == {"*": 5}
    with pytest.raises(SubjectError):
        accounts.person_account_jwt(identities, "a.b")


def test_a_person_may_publish_only_their_intents(identities: Identities) -> None:
    perms = permissions.person_permissions("alice")
    assert perms.pub.allow == ["intent.alice.>"]
    assert set(perms.sub.allow) == {
        "exec.evt.alice.>", "exec.alert.alice.>", "bot.status.alice.>", "_INBOX.>",
    }  # fmt: skip
    account = accounts.person_account_key(identities, "alice").public_key
    text = accounts.person_credentials(identities, "alice", account, 3600, now=100)
    claims = decode(parse_creds(text)[0], UserNats)
    assert claims.exp == 3700 and claims.nats.issuer_account == account
    assert claims.iss == identities.people_signing.public_key
    with pytest.raises(ClaimsError, match="positive"):
        accounts.person_credentials(identities, "alice", account, 0)


def test_system_users_stay_in_their_lanes() -> None:
    everything = {name: make() for name, make in permissions.SYSTEM_PERMISSIONS.items()}
    assert set(everything) == set(permissions.SYSTEM_USERS)
    assert everything["operator"].pub.allow == everything["operator"].pub.deny == []
    for name, perms in everything.items():
        if name == "operator":
            continue
        allowed = perms.pub.allow
        assert ">" not in allowed and "$JS.API.>" not in allowed, name
        assert "$SYS.REQ.CLAIMS.UPDATE" not in allowed, name  # the registrar's SYS user only
        audits = [s for s in allowed if s.startswith("audit.")]
        if name not in ("marketdata", "notifier"):
            assert f"audit.{name}" in audits, name
            for stream in ("EXEC", "RECON", "AUDIT"):
                assert f"$JS.API.STREAM.CREATE.{stream}" in allowed or name == "execution"
    assert "audit.gateway" in everything["gateway"].pub.allow
    assert everything["notifier"].pub.deny == [">"]  # it reads, never publishes
    assert set(everything["notifier"].sub.allow) == {
        "exec.evt.>", "exec.alert.>", "recon.alert.>", "bot.status.>", "$KV.killswitch.>",
    }  # fmt: skip
    assert "ctl.accounts.sync" in everything["execution"].sub.allow
    assert "bot.status.>" in everything["strategy"].pub.allow
    assert "$KV.bot_state.>" not in everything["gateway"].pub.allow
    assert "$KV.bots.>" in everything["gateway"].pub.allow
    gateway_audit = f"$JS.ACK.AUDIT.{permissions.GATEWAY_AUDIT}.>"
    assert gateway_audit in everything["gateway"].pub.allow
    updater = permissions.claims_updater()
    assert updater.pub.allow == ["$SYS.REQ.CLAIMS.UPDATE"]


def test_init_keeps_keys_and_writes_secrets_owner_only(tmp_path: Path) -> None:
    first = init_installation(tmp_path / "auth", ["alice"])
    again = init_installation(tmp_path / "auth", ["alice", "bob"])
    seeds = [k.seed for k in vars(first.identities).values()]
    assert [k.seed for k in vars(again.identities).values()] == seeds  # never replaced
    creds = first.creds["execution"]
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "auth" / "keys").stat().st_mode) == 0o700
    # the user key is kept across reissues (its connections stay valid)
    assert (
        parse_creds(creds.read_text())[1].public_key
        == parse_creds(again.creds["execution"].read_text())[1].public_key
    )
    conf = again.conf.read_text()
    assert all(k.seed.decode() not in conf for k in vars(again.identities).values())
    assert accounts.person_account_key(again.identities, "bob").public_key in conf
    (tmp_path / "auth" / "keys" / "TRADEBUS.nk").write_text(KeyPair.generate("user").seed.decode())
    with pytest.raises(IdentityError, match=r"TRADEBUS\.nk: an user key"):
        Identities.load(tmp_path / "auth")


def test_people_of_refuses_names_that_cannot_be_accounts(tmp_path: Path) -> None:
    assert people_of(REPO / "deploy" / "config" / "accounts.yaml") == [
        "alice", "bob", "carol", "dave",
    ]  # fmt: skip
    bad = tmp_path / "accounts.yaml"
    bad.write_text("accounts:\n  - {id: a-1, user: 'a.b'}\n  - {id: a-2, user: 'a b'}\n")
    with pytest.raises(ConfigError, match=r"users \['a b', 'a.b'\]"):
        people_of(bad)


def test_the_compose_one_shot(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TRADEBUS_FILE_OWNER"):
        parse_owner("tradebus")
    assert parse_owner("10001:10001") == (10001, 10001)
    done = run_nats_init(NatsInitSettings(nats_dir=str(tmp_path / "auth")))
    assert done.people == [] and done.conf.is_file()


def test_the_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    accounts_file = tmp_path / "accounts.yaml"
    accounts_file.write_text("accounts:\n  - {id: zoe-paper, user: zoe}\n")
    auth = tmp_path / "auth"
    with pytest.raises(SystemExit) as exit_:
        main(["nats-init", "--dir", str(auth), "--accounts", str(accounts_file)])
    assert exit_.value.code == 0
    assert "1 people (zoe)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["nats-creds", "zoe", "--dir", str(auth), "--ttl-hours", "1"])
    assert exit_.value.code == 0
    token, _ = parse_creds(capsys.readouterr().out)
    assert decode(token, UserNats).nats.pub.allow == ["intent.zoe.>"]
    for argv in (
        ["nats-init", "--dir", str(auth), "--accounts", str(tmp_path / "missing.yaml")],
        ["nats-creds", "zoe", "--dir", str(tmp_path / "nowhere")],
        ["nats-creds", "no.dots", "--dir", str(auth)],
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2, argv
