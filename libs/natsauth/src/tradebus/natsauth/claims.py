"""NATS JWT v2: operator, account and user claims, signed with ed25519 nkeys.

The format is nats-io/jwt v2 (``v2/claims.go``, ``account_claims.go``,
``user_claims.go``, ``operator_claims.go``, ``types.go``, ``exports.go``,
``imports.go``), which nats-server decodes:

* a token is ``<header>.<claims>.<signature>``, each part base64url without
  padding; the header is ``{"typ":"JWT","alg":"ed25519-nkey"}``; the
  signature is the issuer's ed25519 signature of ``<header>.<claims>``;
* the claims are the registered ones (``jti``, ``iat``, ``iss``, ``name``,
  ``sub``, ``exp``) and ``nats``: the operator, account or user part, with
  ``type`` and ``version: 2``;
* Go's ``omitempty`` drops zero values, and nats-io/jwt embeds structs (an
  account's ``limits`` is ``NatsLimits``, ``AccountLimits`` and
  ``JetStreamLimits`` side by side in one object). The structs below are
  those objects flattened; a field whose default is a zero value is left
  out when it has it (``omit_defaults``), the fields Go always writes have
  no default. *A zero limit means zero*: an account without ``conn`` admits
  no connection; "unlimited" is ``-1`` (:data:`NO_LIMIT`).

``jti``: nats-io/jwt takes the SHA-512/256 of the registered claims alone
(base32, no padding), so two JWTs for one subject issued in the same second
get the same ID, and the full resolver keeps the first of them (its
``saveIfNewer`` skips a JWT whose ID it holds). Here the hash covers the
whole claims, ``nats`` included, so a different JWT always has a different
ID; nats-server only compares IDs.

Why not the PyPI package ``nats-jwt`` (Seznam): it pulls dataclasses-json,
marshmallow, pycryptodome and pytz for what is a few JSON objects, and its
``AccountClaims.__post_init__`` resets ``signing_keys``, which is the one
thing a person's account needs (the people signing key). Keys and signatures
come from ``nkeys``, nats-io's own Python library (the one nats-py reads
``.creds`` files with).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import time
from typing import Any, Generic, Literal, TypeVar

import msgspec
import nacl.exceptions
import nacl.signing
import nkeys

NO_LIMIT = -1
"""A limit without bound (nats-io/jwt ``NoLimit``)."""
ALGORITHM = "ed25519-nkey"
VERSION = 2

KeyKind = Literal["operator", "account", "user"]

_PREFIX: dict[str, int] = {
    "operator": nkeys.PREFIX_BYTE_OPERATOR,
    "account": nkeys.PREFIX_BYTE_ACCOUNT,
    "user": nkeys.PREFIX_BYTE_USER,
}
_FIRST_LETTER = {"operator": "O", "account": "A", "user": "U"}


class ClaimsError(ValueError):
    """A token, a key or a claim is not what it must be; the message says what."""


# ------------------------------------------------------------------------------- keys
class KeyPair:
    """An nkey: an ed25519 key of one kind (operator ``O...``, account ``A...``, user
    ``U...``), known by its seed (``S`` + the kind's letter + base32).

    The seed is a secret: it is never shown by ``repr`` and only written to files
    of mode 0600 (:mod:`tradebus.natsauth.identities`).
    """

    def __init__(self, seed: bytes) -> None:
        try:
            self._kp = nkeys.from_seed(bytearray(seed))
            public = self._kp.public_key
        except (nkeys.NkeysError, ValueError, binascii.Error) as exc:
            raise ClaimsError(f"not an nkey seed ({exc})") from None
        self.seed = bytes(seed)
        self.public_key = public.decode()

    @classmethod
    def generate(cls, kind: KeyKind) -> KeyPair:
        """A new random key of ``kind`` (32 bytes from the OS's CSPRNG)."""
        return cls(nkeys.encode_seed(os.urandom(32), _PREFIX[kind]))

    @classmethod
    def derive(cls, kind: KeyKind, secret: bytes, label: str) -> KeyPair:
        """The key of ``kind`` made from HMAC-SHA256(``secret``, ``label``): the same
        inputs always give the same key (a person's account key from the people
        signing key and their name)."""
        import hmac

        raw = hmac.new(secret, label.encode(), hashlib.sha256).digest()
        return cls(nkeys.encode_seed(raw, _PREFIX[kind]))

    @property
    def kind(self) -> str:
        """``operator``, ``account`` or ``user``."""
        return {v: k for k, v in _FIRST_LETTER.items()}.get(self.public_key[0], "?")

    @property
    def raw_seed(self) -> bytes:
        """The 32 secret bytes of the seed (for :meth:`derive`)."""
        return bytes(nkeys.decode_seed(bytearray(self.seed))[1])

    def sign(self, data: bytes) -> bytes:
        """The 64-byte ed25519 signature of ``data``."""
        return bytes(self._kp.sign(data))

    def __repr__(self) -> str:
        return f"KeyPair({self.public_key})"


def public_key_bytes(public_key: str, kind: KeyKind | None = None) -> bytes:
    """The 32 raw bytes of an encoded public nkey (``O...``, ``A...``, ``U...``).

    Raises
    ------
    ClaimsError
        If it is not a public nkey (of ``kind``, when given), or its checksum is wrong.
    """
    try:
        raw = base64.b32decode(public_key + "=" * (-len(public_key) % 8))
    except (binascii.Error, ValueError):
        raise ClaimsError(f"{public_key!r} is not a public nkey") from None
    if len(raw) != 35 or nkeys.crc16(raw[:-2]) != int.from_bytes(raw[-2:], "little"):
        raise ClaimsError(f"{public_key!r} is not a public nkey (length or checksum)")
    if raw[0] not in _PREFIX.values():
        raise ClaimsError(f"{public_key!r} is not an operator, account or user key")
    if kind is not None and raw[0] != _PREFIX[kind]:
        raise ClaimsError(f"{public_key!r} is not an {kind} key")
    return raw[1:33]


def is_public_key(value: str, kind: KeyKind) -> bool:
    """True if ``value`` is a well-formed public nkey of ``kind``."""
    try:
        public_key_bytes(value, kind)
    except ClaimsError:
        return False
    return True


# ----------------------------------------------------------------------------- claims
class Permission(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Subjects allowed and denied (``types.go`` ``Permission``); a deny wins."""

    allow: list[str] = []
    deny: list[str] = []


class ResponsePermission(msgspec.Struct, kw_only=True):
    """Publishing to the reply subjects of requests received (``max`` replies per
    request within ``ttl`` nanoseconds; ``types.go`` ``ResponsePermission``)."""

    max: int
    ttl: int


class Export(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A subject an account offers to others (``exports.go``). ``service``: requests
    come in, replies go back to the requester's account; ``stream``: messages flow out."""

    name: str = ""
    subject: str
    type: Literal["stream", "service"]
    token_req: bool = False
    response_type: str = ""
    account_token_position: int = 0


class Import(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A subject taken from another account (``imports.go``).

    ``subject`` is in the exporter's namespace; ``local_subject`` is what this
    account's users publish (a service) or see (a stream), default the same.
    """

    name: str = ""
    subject: str
    account: str
    local_subject: str = ""
    type: Literal["stream", "service"]


class AccountLimits(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``OperatorLimits`` flattened: NATS (``subs``, ``data``, ``payload`` bytes),
    account (``imports``, ``exports``, ``wildcards``, ``conn``, ``leaf``) and JetStream
    (``mem_storage``, ``disk_storage`` bytes, ``streams``, ``consumer``) limits.
    0 is zero (JetStream off when both storages are 0), -1 unlimited."""

    subs: int = 0
    data: int = 0
    payload: int = 0
    imports: int = 0
    exports: int = 0
    wildcards: bool = False
    disallow_bearer: bool = False
    conn: int = 0
    leaf: int = 0
    mem_storage: int = 0
    disk_storage: int = 0
    streams: int = 0
    consumer: int = 0
    max_ack_pending: int = 0
    mem_max_stream_bytes: int = 0
    disk_max_stream_bytes: int = 0
    max_bytes_required: bool = False


class OperatorNats(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The ``nats`` part of an operator JWT (``operator_claims.go``):
    ``strict_signing_key_usage`` makes nats-server accept only accounts signed by one of
    ``signing_keys``, never by the operator identity key itself."""

    signing_keys: list[str] = []
    system_account: str = ""
    strict_signing_key_usage: bool = False
    tags: list[str] = []
    type: Literal["operator"]
    version: int


class AccountNats(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The ``nats`` part of an account JWT (``account_claims.go`` ``Account``).

    ``revocations`` maps a user public key, or ``*`` for every user, to a time
    (Unix seconds): a user JWT of that key issued at or before it is refused,
    and its connections are closed.
    """

    imports: list[Import] = []
    exports: list[Export] = []
    limits: AccountLimits
    signing_keys: list[str] = []
    revocations: dict[str, int] = {}
    default_permissions: dict[str, Permission] = {}
    description: str = ""
    tags: list[str] = []
    type: Literal["account"]
    version: int


class UserNats(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The ``nats`` part of a user JWT (``user_claims.go`` ``User``): permissions,
    limits (``subs``, ``data``, ``payload``: 0 is zero, -1 unlimited, as nats-io/jwt's
    ``NewUserClaims`` sets them) and, when a signing key signed it, ``issuer_account``
    (the account's identity key)."""

    pub: Permission
    sub: Permission
    resp: ResponsePermission | None = None
    subs: int = 0
    data: int = 0
    payload: int = 0
    bearer_token: bool = False
    issuer_account: str = ""
    tags: list[str] = []
    type: Literal["user"]
    version: int


N = TypeVar("N", OperatorNats, AccountNats, UserNats)


class Claims(msgspec.Struct, Generic[N], kw_only=True, omit_defaults=True):
    """One JWT's claims (``claims.go`` ``ClaimsData`` + ``nats``): ``sub`` the key it is
    about, ``iss`` the key that signed it, ``iat``/``exp`` Unix seconds (``exp`` 0:
    never expires), ``name`` a label."""

    aud: str = ""
    exp: int = 0
    jti: str = ""
    iat: int = 0
    iss: str = ""
    name: str = ""
    nbf: int = 0
    sub: str
    nats: N


class _Header(msgspec.Struct):
    typ: str
    alg: str


_HEADER = base64.urlsafe_b64encode(b'{"typ":"JWT","alg":"ed25519-nkey"}').rstrip(b"=")


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_EXPECTED_SUBJECT: dict[type, KeyKind] = {
    OperatorNats: "operator",
    AccountNats: "account",
    UserNats: "user",
}
_EXPECTED_ISSUER: dict[type, tuple[KeyKind, ...]] = {
    OperatorNats: ("operator",),
    AccountNats: ("operator", "account"),
    UserNats: ("account",),
}


def encode(claims: Claims[N], signer: KeyPair, now: int | None = None) -> str:
    """Sign ``claims`` with ``signer``: the JWT text.

    ``iss`` becomes ``signer``'s public key, ``iat`` ``now`` (Unix seconds,
    default the clock), ``jti`` the hash of the rest (module docstring).

    Raises
    ------
    ClaimsError
        If ``sub`` is not a key of the claims' kind, or ``signer`` is not a key that
        may sign them (an operator JWT: operator; an account: operator or account;
        a user: account).
    """
    kind = type(claims.nats)
    if not is_public_key(claims.sub, _EXPECTED_SUBJECT[kind]):
        raise ClaimsError(f"sub {claims.sub!r} is not an {_EXPECTED_SUBJECT[kind]} public key")
    if signer.kind not in _EXPECTED_ISSUER[kind]:
        raise ClaimsError(f"a {signer.kind} key cannot sign {_EXPECTED_SUBJECT[kind]} claims")
    unsigned = msgspec.structs.replace(
        claims,
        iss=signer.public_key,
        iat=int(time.time()) if now is None else now,
        jti="",
    )
    digest = hashlib.new("sha512_256", msgspec.json.encode(unsigned)).digest()
    jti = base64.b32encode(digest).decode().rstrip("=")
    payload = _b64(msgspec.json.encode(msgspec.structs.replace(unsigned, jti=jti)))
    signed = _HEADER + b"." + payload
    return (signed + b"." + _b64(signer.sign(signed))).decode()


def decode(token: str, kind: type[N]) -> Claims[N]:
    """The claims of ``token``, after checking its header and its issuer's signature.

    Only the signature is checked, not whether the issuer is trusted (nats-server
    does that: the operator, an operator signing key, an account's signing keys).

    Raises
    ------
    ClaimsError
        If the token is malformed, of another kind, or its signature is wrong.
    """
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise ClaimsError("a JWT has 3 parts separated by dots")
    try:
        header = msgspec.json.decode(_unb64(parts[0]), type=_Header)
        decoded: Any = msgspec.json.decode(_unb64(parts[1]), type=Claims[kind])  # type: ignore[valid-type]
        claims: Claims[N] = decoded
        signature = _unb64(parts[2])
    except (msgspec.DecodeError, binascii.Error, ValueError) as exc:
        raise ClaimsError(f"not a NATS {_EXPECTED_SUBJECT[kind]} JWT: {exc}") from None
    if header.typ.upper() != "JWT" or header.alg.lower() != ALGORITHM:
        raise ClaimsError(f"unsupported JWT header {header}")
    verify_key = nacl.signing.VerifyKey(public_key_bytes(claims.iss))
    try:
        verify_key.verify(f"{parts[0]}.{parts[1]}".encode(), signature)
    except nacl.exceptions.BadSignatureError:
        who = claims.name or claims.sub
        raise ClaimsError(f"the signature of {who} is not {claims.iss}'s") from None
    return claims


# ------------------------------------------------------------------------------ creds
_CREDS = """\
-----BEGIN NATS USER JWT-----
{jwt}
------END NATS USER JWT------

************************* IMPORTANT *************************
NKEY Seed printed below can be used to sign and prove identity.
NKEYs are sensitive and should be treated as secrets.

-----BEGIN USER NKEY SEED-----
{seed}
------END USER NKEY SEED------

*************************************************************
"""


def format_creds(user_jwt: str, user_key: KeyPair) -> str:
    """The text of a ``.creds`` file: the user JWT and the user's seed, in the layout
    of nats-io/jwt ``FormatUserConfig`` (``creds_utils.go``), which nats-py, the nats
    CLI and every NATS client read.

    Raises
    ------
    ClaimsError
        If ``user_key`` is not a user key.
    """
    if user_key.kind != "user":
        raise ClaimsError(f"a .creds file holds a user key, not {user_key.kind} key")
    return _CREDS.format(jwt=user_jwt, seed=user_key.seed.decode())


def parse_creds(text: str) -> tuple[str, KeyPair]:
    """``(user JWT, user key)`` of a ``.creds`` file's text.

    Raises
    ------
    ClaimsError
        If either block is missing or malformed.
    """

    def block(begin: str) -> str:
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if begin in line and i + 1 < len(lines) and lines[i + 1].strip():
                return lines[i + 1].strip()
        raise ClaimsError(f"no {begin!r} block in the credentials")

    user_jwt = block("BEGIN NATS USER JWT")
    key = KeyPair(block("BEGIN USER NKEY SEED").encode())
    if key.kind != "user":
        raise ClaimsError("the credentials' seed is not a user key")
    return user_jwt, key
