"""Passwords, tokens and sign-in throttling: the gateway's credentials, nothing else.

* Passwords are hashed with argon2id (:mod:`tradebus.ledger.passwords`, shared
  with ``tradebus users create``; re-exported here): RFC 9106's second
  recommended option, in a worker thread so a sign-in never stalls the event
  loop. A user name that does not exist still costs one verification, so
  timing does not tell which names exist.
* An **access token** is a JWT (RFC 7519) signed with HS256 by the gateway's
  secret: ``sub`` (user id), ``role``, ``iat``, ``exp``, ``jti`` and
  ``typ: "access"``; short-lived (15 minutes by default). The gateway also
  checks on every request that the user still exists and is not disabled.
* A **refresh token** is 32 random bytes (URL-safe base64); only its SHA-256
  is stored (:class:`tradebus.ledger.users.Sessions`), rotated on every use.
* :class:`LoginThrottle`: failed sign-ins counted per user name and per client
  address in a sliding window; past the limit further attempts are refused
  (429) until the oldest failure leaves the window. Counts live in the
  gateway process (one replica: exact; several: per replica).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable

import jwt
import msgspec

from tradebus.common.ids import UserId
from tradebus.ledger.passwords import (
    MAX_PASSWORD_CHARS,
    MIN_PASSWORD_CHARS,
    PasswordRejected,
    Passwords,
    check_new_password,
)
from tradebus.ledger.users import Role

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "JWT_ALGORITHM",
    "MAX_PASSWORD_CHARS",
    "MIN_PASSWORD_CHARS",
    "AccessClaims",
    "AccessTokens",
    "LoginThrottle",
    "PasswordRejected",
    "Passwords",
    "TokenInvalid",
    "check_new_password",
    "new_family",
    "new_refresh_token",
    "refresh_token_hash",
]

ACCESS_TOKEN_TYPE = "access"
JWT_ALGORITHM = "HS256"


class AccessClaims(msgspec.Struct, frozen=True, kw_only=True):
    """What a valid access token says: who (``user``), as what (``role``), until when
    (``expires``, Unix seconds)."""

    user: UserId
    role: Role
    expires: int


class TokenInvalid(Exception):
    """An access token is missing, malformed, tampered with, of the wrong kind, or expired."""


class AccessTokens:
    """Issues and checks access JWTs with the gateway's secret (HS256)."""

    def __init__(self, secret: str, lifetime_seconds: int, now: Callable[[], float] = time.time):
        self._secret = secret
        self._lifetime = lifetime_seconds
        self._now = now

    @property
    def lifetime_seconds(self) -> int:
        """How long a new access token is valid."""
        return self._lifetime

    def issue(self, user: UserId, role: Role) -> str:
        """A new access token for ``user`` as ``role``."""
        now = int(self._now())
        claims = {
            "sub": user,
            "role": role,
            "typ": ACCESS_TOKEN_TYPE,
            "iat": now,
            "exp": now + self._lifetime,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm=JWT_ALGORITHM)

    def check(self, token: str) -> AccessClaims:
        """The claims of a valid access token.

        Raises
        ------
        TokenInvalid
            If the token is not a JWT signed with our secret, has expired, or is
            not an access token (the message is for logs, never echoing the token).
        """
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[JWT_ALGORITHM],
                options={"require": ["sub", "exp", "iat", "typ", "role"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenInvalid("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid(f"token invalid ({type(exc).__name__})") from None
        role = claims.get("role")
        if claims.get("typ") != ACCESS_TOKEN_TYPE or role not in ("user", "admin"):
            raise TokenInvalid("not an access token")
        return AccessClaims(user=UserId(str(claims["sub"])), role=role, expires=int(claims["exp"]))


def new_refresh_token() -> tuple[str, bytes]:
    """A new refresh token and the SHA-256 that is stored of it."""
    token = secrets.token_urlsafe(32)
    return token, refresh_token_hash(token)


def refresh_token_hash(token: str) -> bytes:
    """The SHA-256 of a refresh token, as stored."""
    return hashlib.sha256(token.encode()).digest()


def new_family() -> str:
    """A new sign-in's id (the family of its refresh tokens)."""
    return uuid.uuid4().hex


class LoginThrottle:
    """Failed sign-ins per key (``user:<name>``, ``addr:<address>``) in a sliding window.

    ``max_failures`` failures within ``window_seconds`` block the key until the
    oldest of them leaves the window. ``now`` is a monotonic clock in seconds.
    """

    def __init__(
        self,
        max_failures: int,
        window_seconds: float,
        now: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self._max = max_failures
        self._window = window_seconds
        self._now = now
        self._max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        cutoff = self._now() - self._window
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, *keys: str) -> float:
        """Seconds until any of ``keys`` may try again (0: go ahead)."""
        wait = 0.0
        for key in keys:
            times = self._recent(key)
            if times is not None and len(times) >= self._max:
                wait = max(wait, times[0] + self._window - self._now())
        return wait

    def failed(self, *keys: str) -> None:
        """Count a failed sign-in against each of ``keys``."""
        if len(self._failures) >= self._max_keys:  # bounded memory under a spray of names
            for key in list(self._failures):
                self._recent(key)
        now = self._now()
        for key in keys:
            self._failures.setdefault(key, deque(maxlen=self._max)).append(now)

    def succeeded(self, user_key: str) -> None:
        """Forget the failures of a user name after a successful sign-in (the address's stay)."""
        self._failures.pop(user_key, None)
