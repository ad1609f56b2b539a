"""The identities of one installation on disk, and the nats-server config they make.

``tradebus nats-init --dir DIR`` (:func:`init_installation`) lays out::

    DIR/keys/operator.nk          operator identity key: signs the operator JWT, nothing else
    DIR/keys/operator-signing.nk  operator signing key: signs every account JWT
    DIR/keys/SYS.nk               account SYS (nats-server's system account): signs its user
    DIR/keys/TRADEBUS.nk          account TRADEBUS: signs the users of the services
    DIR/keys/people-signing.nk    a signing key of every person's account: signs their users
    DIR/creds/<user>.creds        marketdata, strategy, execution, reconciler, operator, gateway
    DIR/creds/sys.creds           the SYS user that may only push account JWTs (the gateway's)
    DIR/nats.conf                 nats-server's config: no secret, only public JWTs
    DIR/jwt/                      the full resolver's account JWTs (default; nats-server writes)

Keys and credentials are files of mode 0600 in directories of mode 0700;
existing keys are never replaced (running it again keeps the installation),
credentials are reissued with the same user keys and the permissions of
this version, and ``nats.conf`` is rewritten with the people of the
accounts file preloaded.

Trust: whoever holds the operator signing key can sign any account, and
whoever holds the people signing key can issue a user of any person's
account. The gateway holds those two and ``sys.creds`` (it registers people
at run time); no service does; the operator identity key stays here.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from tradebus.common.config import ConfigError, load_yaml
from tradebus.common.subjects import TOKEN_PATTERN
from tradebus.natsauth import accounts, permissions
from tradebus.natsauth.claims import ClaimsError, KeyKind, KeyPair, parse_creds

KEY_FILES: dict[str, tuple[str, KeyKind]] = {
    "operator": ("keys/operator.nk", "operator"),
    "operator_signing": ("keys/operator-signing.nk", "operator"),
    "sys_account": ("keys/SYS.nk", "account"),
    "tradebus": ("keys/TRADEBUS.nk", "account"),
    "people_signing": ("keys/people-signing.nk", "account"),
}
"""Attribute of :class:`Identities` -> (path under the directory, kind of key)."""
SYS_CREDS = "creds/sys.creds"
CONF = "nats.conf"
RESOLVER_DIR = "jwt"


def creds_path(directory: Path, user: str) -> Path:
    """``DIR/creds/<user>.creds``: the credentials of a ``TRADEBUS`` user."""
    return directory / "creds" / f"{user}.creds"


class IdentityError(RuntimeError):
    """The identities directory cannot be used; the message says which file and why."""


@dataclass(frozen=True)
class Identities:
    """The keys of one installation (module docstring). It is a
    :class:`~tradebus.natsauth.accounts.PeopleSigners`."""

    operator: KeyPair
    operator_signing: KeyPair
    sys_account: KeyPair
    tradebus: KeyPair
    people_signing: KeyPair

    @property
    def tradebus_public_key(self) -> str:
        """The public key of the account ``TRADEBUS``."""
        return self.tradebus.public_key

    @classmethod
    def generate(cls) -> Identities:
        """Fresh random keys."""
        return cls(**{attr: KeyPair.generate(kind) for attr, (_, kind) in KEY_FILES.items()})

    @classmethod
    def load(cls, directory: Path) -> Identities:
        """The keys kept under ``directory``.

        Raises
        ------
        IdentityError
            If a key file is missing, unreadable, or not a seed of its kind.
        """
        keys = {}
        for attr, (name, kind) in KEY_FILES.items():
            keys[attr] = _read_key(directory / name, kind)
        return cls(**keys)

    @classmethod
    def load_or_create(cls, directory: Path) -> Identities:
        """The keys under ``directory``, making the missing ones (never replacing one).

        Raises
        ------
        IdentityError
            If an existing key file is unreadable or not a seed of its kind.
        OSError
            If a new key cannot be written.
        """
        keys = {}
        for attr, (name, kind) in KEY_FILES.items():
            path = directory / name
            if path.exists():
                keys[attr] = _read_key(path, kind)
            else:
                keys[attr] = KeyPair.generate(kind)
                write_secret(path, keys[attr].seed.decode() + "\n", replace=False)
        return cls(**keys)

    def operator_jwt(self) -> str:
        """The operator JWT (:func:`~tradebus.natsauth.accounts.operator_jwt`)."""
        return accounts.operator_jwt(
            self.operator, self.operator_signing, self.sys_account.public_key
        )


def read_key(path: Path, kind: KeyKind) -> KeyPair:
    """The key whose seed is in the file ``path`` (one line), which must be of ``kind``.

    Raises
    ------
    IdentityError
        If the file is missing, unreadable, or not a seed of ``kind``.
    """
    return _read_key(path, kind)


def _read_key(path: Path, kind: KeyKind) -> KeyPair:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise IdentityError(f"{path}: cannot read the key: {exc.strerror}") from None
    try:
        key = KeyPair(text.encode())
    except ClaimsError:
        raise IdentityError(f"{path}: not an nkey seed") from None
    if key.kind != kind:
        raise IdentityError(f"{path}: an {key.kind} key where an {kind} key belongs")
    return key


def write_secret(path: Path, text: str, replace: bool = True) -> None:
    """Write ``text`` to ``path`` with mode 0600 (its directory 0700), atomically.

    ``replace=False`` refuses to replace an existing file.

    Raises
    ------
    FileExistsError
        If ``replace`` is false and ``path`` exists.
    OSError
        If it cannot be written.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if path exists
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


class _Account(msgspec.Struct, kw_only=True):
    user: str


class _AccountsFile(msgspec.Struct, kw_only=True):
    accounts: list[_Account]


def people_of(accounts_file: Path) -> list[str]:
    """The users owning the accounts of ``accounts_file``, sorted, each once.

    Raises
    ------
    ConfigError
        If the file cannot be read, or a user is not a valid subject token.
    """
    parsed = load_yaml(accounts_file, _AccountsFile)
    people = sorted({a.user for a in parsed.accounts})
    bad = [p for p in people if not TOKEN_PATTERN.match(p)]
    if bad:
        raise ConfigError(
            f"{accounts_file}: users {bad} cannot be NATS accounts (must match"
            f" {TOKEN_PATTERN.pattern})"
        )
    return people


_HEADER = """\
# tradebus: nats-server in operator mode (README "Who may do what",
# docs/design.md "Bus permissions").
# GENERATED by `tradebus nats-init`: edit tradebus.natsauth, not this file.
#
# Everything here is public (JWTs are signed claims, no seed, no password).
# Accounts: SYS (nats-server's), TRADEBUS (every service, the gateway, the
# operator; JetStream lives here only) and one account per person, which
# imports from TRADEBUS exactly their intents (a service: `intent.<user>.>`
# arrives as `person.intent.<user>.>`, and JetStream's ack returns into the
# person's own account), their order events, alerts and bot statuses.
# People added at run time are pushed by the gateway on $SYS.REQ.CLAIMS.UPDATE
# and kept by the full resolver in its directory: no restart, no edit here.
# The command line of compose and `tradebus demo` sets the port (-p), the
# JetStream store (-sd) and monitoring (-m).
"""


def render_server_conf(identities: Identities, people: list[str], resolver_dir: Path | str) -> str:
    """nats-server's config for operator mode (module docstring): the operator JWT,
    the system account, the full resolver in ``resolver_dir`` (people may be added and
    disabled at run time), ``SYS``, ``TRADEBUS`` and each of ``people`` preloaded,
    JetStream on.

    Raises
    ------
    tradebus.common.subjects.SubjectError
        If a name of ``people`` is not a valid subject token.
    """
    preload = {
        identities.sys_account.public_key: (
            accounts.SYS_ACCOUNT,
            accounts.system_account_jwt(identities.operator_signing, identities.sys_account),
        ),
        identities.tradebus.public_key: (
            accounts.SYSTEM_ACCOUNT,
            accounts.tradebus_account_jwt(identities.operator_signing, identities.tradebus),
        ),
    }
    for person in sorted(set(people)):
        public_key, token = accounts.person_account_jwt(identities, person)
        preload[public_key] = (person, token)
    lines = [
        _HEADER,
        f"operator: {identities.operator_jwt()}",
        f"system_account: {identities.sys_account.public_key}",
        "",
        "resolver: {",
        "  type: full",
        f"  dir: {_quote(str(resolver_dir))}",
        "  allow_delete: false",
        '  interval: "2m"',
        "}",
        "",
        "resolver_preload: {",
        *(f"  # {name}\n  {key}: {token}" for key, (name, token) in preload.items()),
        "}",
        "",
        "jetstream: {}                                     # store: -sd <dir> on the command line",
        "",
    ]
    return "\n".join(lines)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Installation:
    """What :func:`init_installation` made: paths and the people preloaded."""

    directory: Path
    conf: Path
    creds: dict[str, Path]
    """``TRADEBUS`` user -> their ``.creds`` file."""
    sys_creds: Path
    operator_signing_key: Path
    people_signing_key: Path
    people: list[str]
    identities: Identities


def init_installation(
    directory: Path,
    people: Sequence[str] = (),
    resolver_dir: Path | str | None = None,
) -> Installation:
    """Make (or keep) the identities under ``directory``, (re)issue the credentials of
    every ``TRADEBUS`` user and of the SYS claims-update user with their existing user
    keys, and write ``nats.conf`` preloading ``people`` (module docstring).

    ``resolver_dir``: where nats-server keeps account JWTs (default ``DIR/jwt``; in
    compose a path of the server's data volume).

    Raises
    ------
    IdentityError
        If an existing key or credentials file is unreadable or of the wrong kind.
    tradebus.common.subjects.SubjectError
        If a name of ``people`` is not a valid subject token.
    OSError
        If a file cannot be written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    identities = Identities.load_or_create(directory)
    creds: dict[str, Path] = {}
    for user in permissions.SYSTEM_USERS:
        path = creds_path(directory, user)
        text = accounts.system_user_creds(identities.tradebus, user, _user_key_of(path))
        write_secret(path, text)
        creds[user] = path
    sys_path = directory / SYS_CREDS
    write_secret(
        sys_path, accounts.claims_updater_creds(identities.sys_account, _user_key_of(sys_path))
    )
    conf = directory / CONF
    resolver = directory / RESOLVER_DIR if resolver_dir is None else resolver_dir
    conf.write_text(render_server_conf(identities, list(people), resolver))
    return Installation(
        directory=directory,
        conf=conf,
        creds=creds,
        sys_creds=sys_path,
        operator_signing_key=directory / KEY_FILES["operator_signing"][0],
        people_signing_key=directory / KEY_FILES["people_signing"][0],
        people=sorted(set(people)),
        identities=identities,
    )


def _user_key_of(path: Path) -> KeyPair | None:
    """The user key of an existing ``.creds`` file (kept across reissues), else None."""
    if not path.exists():
        return None
    try:
        return parse_creds(path.read_text())[1]
    except (OSError, ClaimsError) as exc:
        raise IdentityError(f"{path}: not a NATS credentials file ({exc})") from None
