"""The JWTs of one installation: the operator, its accounts and their users.

Operator mode (docs/design.md, "Bus permissions"). nats-server trusts one
operator; the operator's JWT names its signing key and the system account.
Three kinds of accounts exist, all signed by the operator signing key:

* ``SYS``: nats-server's system account. Its one user of ours may only push
  account JWTs (``$SYS.REQ.CLAIMS.UPDATE``): the registrar's connection.
* ``TRADEBUS``: the system. Every service, the gateway and the operator, each
  user with its own allow-list (:mod:`tradebus.natsauth.permissions`);
  JetStream exists here only. It exports, to any account, the service
  ``person.intent.>`` and the streams ``exec.evt.>``, ``exec.alert.>`` and
  ``bot.status.>``. Public exports are safe because only the operator signing
  key can make an account, and every account it signs imports its own
  person's subjects only (:func:`person_account_jwt`).
* one account per person, named by their user name: it imports the service
  ``person.intent.<user>.>`` as ``intent.<user>.>`` (their intent lands in
  ``TRADEBUS`` as ``person.intent.<user>.<source>``, captured by
  ``INTENTS_<user>``; JetStream's ack goes back through the import into the
  person's own account, so a reply subject names only a subject of their
  account, where no KV bucket, no ``$JS.API`` and no other user exist) and
  the streams of their own events, alerts and bot statuses. Its limits: 32
  connections, 1000 subscriptions per connection, 8 KiB messages, no
  JetStream, no leaf node, no export. Its users are signed by the *people
  signing key*, listed as a signing key of every person's account, so
  credentials for anyone can be issued without each account's own key.

A person's account key is derived from the people signing key and the user
name (HMAC-SHA256): the same person always has the same account, whoever
registers them (``tradebus nats-init``'s preload, the gateway at run time),
and nothing needs storing. Whoever can derive it already holds the people
signing key, which signs users for every person anyway.
"""

from __future__ import annotations

import time
from typing import Protocol

from tradebus.common import subjects
from tradebus.natsauth import permissions
from tradebus.natsauth.claims import (
    NO_LIMIT,
    VERSION,
    AccountLimits,
    AccountNats,
    Claims,
    ClaimsError,
    Export,
    Import,
    KeyPair,
    OperatorNats,
    UserNats,
    encode,
    format_creds,
    public_key_bytes,
)

SYSTEM_ACCOUNT = "TRADEBUS"
"""The name of the account of every service, the gateway and the operator."""
SYS_ACCOUNT = "SYS"
"""The name of nats-server's system account."""
PERSON_MAX_PAYLOAD = 8 * 1024
"""Largest message a person may publish, bytes (an intent is a few hundred)."""
PERSON_MAX_CONNECTIONS = 32
PERSON_MAX_SUBSCRIPTIONS = 1_000
"""Per connection (nats-server applies an account's ``subs`` to each of its clients)."""

EXPORTED_SERVICE = subjects.PERSON_PREFIX + subjects.INTENT_ALL  # person.intent.>
EXPORTED_STREAMS = (subjects.EXEC_EVT_ALL, subjects.EXEC_ALERT_ALL, subjects.BOT_STATUS_ALL)


def _unlimited(jetstream: bool = False) -> AccountLimits:
    """Limits without bound (NATS and account), wildcard exports allowed; JetStream
    unlimited if ``jetstream``, else off (all its limits 0)."""
    js = NO_LIMIT if jetstream else 0
    return AccountLimits(
        subs=NO_LIMIT,
        data=NO_LIMIT,
        payload=NO_LIMIT,
        imports=NO_LIMIT,
        exports=NO_LIMIT,
        wildcards=True,
        conn=NO_LIMIT,
        leaf=NO_LIMIT,
        mem_storage=js,
        disk_storage=js,
        streams=js,
        consumer=js,
    )


class PeopleSigners(Protocol):
    """What issuing people's accounts and credentials takes (held by the gateway and by
    ``tradebus nats-init``): the operator signing key, the people signing key and the
    public key of the account ``TRADEBUS`` (the exporter of their subjects)."""

    @property
    def operator_signing(self) -> KeyPair: ...

    @property
    def people_signing(self) -> KeyPair: ...

    @property
    def tradebus_public_key(self) -> str: ...


def operator_jwt(operator: KeyPair, operator_signing: KeyPair, system_account: str) -> str:
    """The operator JWT, self-signed by the operator identity key (its only use).

    Not ``strict_signing_key_usage``: nats-server 2.15 would then also refuse users
    signed by an account's identity key (``hasIssuer`` looks at signing keys only),
    which ``SYS`` and ``TRADEBUS`` do; the identity key never leaves
    ``tradebus nats-init``'s directory either way.
    """
    claims = Claims(
        sub=operator.public_key,
        name="tradebus",
        nats=OperatorNats(
            signing_keys=[operator_signing.public_key],
            system_account=system_account,
            type="operator",
            version=VERSION,
        ),
    )
    return encode(claims, operator)


def system_account_jwt(operator_signing: KeyPair, sys_account: KeyPair) -> str:
    """The JWT of ``SYS``, nats-server's system account (no JetStream)."""
    return _account(operator_signing, sys_account.public_key, SYS_ACCOUNT, AccountNats(
        limits=_unlimited(),
        description="nats-server's system account",
        type="account",
        version=VERSION,
    ))  # fmt: skip


def tradebus_account_jwt(operator_signing: KeyPair, tradebus: KeyPair) -> str:
    """The JWT of ``TRADEBUS``: unlimited, JetStream on, the people's subjects exported
    (module docstring)."""
    exports = [
        Export(name="person intents", subject=EXPORTED_SERVICE, type="service"),
        *(Export(name=s, subject=s, type="stream") for s in EXPORTED_STREAMS),
    ]
    return _account(operator_signing, tradebus.public_key, SYSTEM_ACCOUNT, AccountNats(
        exports=sorted(exports, key=lambda e: e.subject),
        limits=_unlimited(jetstream=True),
        description="tradebus: every service, the gateway and the operator",
        type="account",
        version=VERSION,
    ))  # fmt: skip


def person_account_key(signers: PeopleSigners, user: str) -> KeyPair:
    """The account key of ``user`` (module docstring: derived, never stored).

    Raises
    ------
    tradebus.common.subjects.SubjectError
        If ``user`` is not a valid subject token.
    """
    label = f"tradebus person account {subjects.token(user, 'user')}"
    return KeyPair.derive("account", signers.people_signing.raw_seed, label)


def person_account_jwt(
    signers: PeopleSigners, user: str, disabled: bool = False, now: int | None = None
) -> tuple[str, str]:
    """``(account public key, account JWT)`` of ``user``'s own account, signed by the
    operator signing key (module docstring).

    ``disabled``: the same account admitting no connection (``conn`` 0) and
    revoking every user JWT issued up to ``now`` (``revocations: {"*": now}``):
    nats-server refuses their connections and closes the open ones.

    Raises
    ------
    tradebus.common.subjects.SubjectError
        If ``user`` is not a valid subject token.
    """
    when = int(time.time()) if now is None else now
    account = person_account_key(signers, user).public_key
    exporter = signers.tradebus_public_key
    imports = [
        Import(
            name="their intents",
            subject=subjects.PERSON_PREFIX + f"intent.{user}.>",
            account=exporter,
            local_subject=f"intent.{user}.>",
            type="service",
        ),
        Import(name="their order events", subject=f"exec.evt.{user}.>", account=exporter,
               type="stream"),
        Import(name="their account alerts", subject=f"exec.alert.{user}.>", account=exporter,
               type="stream"),
        Import(name="their bot statuses", subject=subjects.bot_status_of(user), account=exporter,
               type="stream"),
    ]  # fmt: skip
    limits = AccountLimits(
        subs=PERSON_MAX_SUBSCRIPTIONS,
        data=NO_LIMIT,
        payload=PERSON_MAX_PAYLOAD,
        imports=len(imports),
        exports=0,
        conn=0 if disabled else PERSON_MAX_CONNECTIONS,
        leaf=0,
    )
    nats = AccountNats(
        imports=sorted(imports, key=lambda i: i.subject),
        limits=limits,
        signing_keys=[signers.people_signing.public_key],
        revocations={"*": when} if disabled else {},
        description=f"tradebus person {user}" + (" (disabled)" if disabled else ""),
        type="account",
        version=VERSION,
    )
    return account, _account(signers.operator_signing, account, user, nats, when)


def user_jwt(
    issuer: KeyPair,
    user_key: KeyPair,
    name: str,
    nats: UserNats,
    issuer_account: str = "",
    expires: int = 0,
    now: int | None = None,
) -> str:
    """A user JWT of ``user_key`` with permissions ``nats``, signed by ``issuer`` (the
    account's identity key, or one of its signing keys with ``issuer_account`` the
    account's public key); ``expires``: Unix seconds, 0 never."""
    if issuer_account:
        public_key_bytes(issuer_account, "account")
        nats = _with_issuer_account(nats, issuer_account)
    return encode(Claims(sub=user_key.public_key, name=name, exp=expires, nats=nats), issuer, now)


def system_user_creds(tradebus: KeyPair, name: str, user_key: KeyPair | None = None) -> str:
    """The ``.creds`` text of ``TRADEBUS`` user ``name`` (its permissions of
    :data:`~tradebus.natsauth.permissions.SYSTEM_PERMISSIONS`), with ``user_key``
    (default a new one). No expiry: ``tradebus nats-init`` reissues them.

    Raises
    ------
    KeyError
        If ``name`` is not a user of ``TRADEBUS``.
    """
    key = user_key or KeyPair.generate("user")
    nats = permissions.SYSTEM_PERMISSIONS[name]()
    return format_creds(user_jwt(tradebus, key, name, nats), key)


def claims_updater_creds(sys_account: KeyPair, user_key: KeyPair | None = None) -> str:
    """The ``.creds`` text of the ``SYS`` user allowed only to push account JWTs."""
    key = user_key or KeyPair.generate("user")
    nats = permissions.claims_updater()
    return format_creds(user_jwt(sys_account, key, "claims-update", nats), key)


def person_credentials(
    signers: PeopleSigners,
    user: str,
    account_public_key: str,
    ttl_seconds: int,
    now: int | None = None,
) -> str:
    """The ``.creds`` text for ``user``: a new user key, its JWT signed by the people
    signing key for ``user``'s account, permissions of
    :func:`~tradebus.natsauth.permissions.person_permissions`, expiring after
    ``ttl_seconds`` (> 0).

    Raises
    ------
    ClaimsError
        If ``account_public_key`` is not ``user``'s account, or ``ttl_seconds`` is not
        positive.
    """
    if ttl_seconds <= 0:
        raise ClaimsError(f"ttl_seconds must be positive, got {ttl_seconds}")
    expected = person_account_key(signers, user).public_key
    if account_public_key != expected:
        raise ClaimsError(f"{account_public_key!r} is not the NATS account of {user}")
    when = int(time.time()) if now is None else now
    key = KeyPair.generate("user")
    token = user_jwt(
        signers.people_signing,
        key,
        user,
        permissions.person_permissions(user),
        issuer_account=account_public_key,
        expires=when + ttl_seconds,
        now=when,
    )
    return format_creds(token, key)


def _account(
    signer: KeyPair, account: str, name: str, nats: AccountNats, now: int | None = None
) -> str:
    if signer.kind != "operator":
        raise ClaimsError("accounts are signed by the operator signing key")
    return encode(Claims(sub=account, name=name, nats=nats), signer, now)


def _with_issuer_account(nats: UserNats, account: str) -> UserNats:
    import msgspec

    return msgspec.structs.replace(nats, issuer_account=account)
