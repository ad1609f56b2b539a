"""Passwords of the people in ``users``: the rules for a new one, and argon2id hashing.

Shared by the gateway (sign-in, ``PUT /api/v1/me/password``, users created by
an admin) and the CLI (``tradebus users create``), which both write the
``users`` table (:class:`tradebus.ledger.users.Users`): one hash format, one
set of rules.

* Hashes are argon2id PHC strings (``$argon2id$v=19$m=65536,t=3,p=4$...``)
  with ``argon2-cffi``'s defaults: RFC 9106's second recommended option
  (64 MiB, 3 passes). Hashing and verifying run in a worker thread, so a
  sign-in never stalls an event loop.
* A user name that does not exist still costs one verification (of a
  dummy hash), so the time of a refusal does not tell which names exist.
* A new password must have :data:`MIN_PASSWORD_CHARS` to
  :data:`MAX_PASSWORD_CHARS` characters (NIST SP 800-63B §5.1.1.2: length,
  no composition rules).

A plain password is never stored, logged or put in an exception message.
"""

from __future__ import annotations

import asyncio
import secrets

import argon2

MIN_PASSWORD_CHARS = 10
"""Shortest password accepted for a new password."""
MAX_PASSWORD_CHARS = 256
"""Longest password accepted (argon2 would take more; this bounds the work of a request)."""


class PasswordRejected(ValueError):
    """A new password does not meet the rules; the message says which (never the password)."""


def check_new_password(password: str) -> None:
    """Refuse a password shorter than :data:`MIN_PASSWORD_CHARS` or longer than
    :data:`MAX_PASSWORD_CHARS` characters (NIST SP 800-63B §5.1.1.2: length, not
    composition rules).

    Raises
    ------
    PasswordRejected
        Saying which rule failed (never echoing the password).
    """
    if len(password) < MIN_PASSWORD_CHARS:
        raise PasswordRejected(f"must be at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise PasswordRejected(f"must be at most {MAX_PASSWORD_CHARS} characters")


class Passwords:
    """argon2id hashing and verification, off the event loop (module docstring).

    ``hasher``: an ``argon2.PasswordHasher`` (tests may pass a cheaper one);
    the default has argon2-cffi's RFC 9106 parameters.
    """

    def __init__(self, hasher: argon2.PasswordHasher | None = None) -> None:
        self._hasher = hasher or argon2.PasswordHasher()
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash_now(self, password: str) -> str:
        """The PHC string of ``password``, computed in this thread (for a CLI)."""
        return self._hasher.hash(password)

    async def hash(self, password: str) -> str:
        """The PHC string of ``password`` (``$argon2id$v=19$...``), computed in a worker
        thread."""
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True if ``password`` matches ``password_hash``; None (no such user) costs the same
        time and is False. A malformed hash is False, never an error."""

        def check() -> bool:
            try:
                return self._hasher.verify(password_hash or self._dummy, password) and (
                    password_hash is not None
                )
            except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
                return False

        return await asyncio.to_thread(check)
