"""People added to (and removed from) a running nats-server: no restart, no config edit.

nats-server's full resolver (``resolver: {type: full, dir: ...}``) keeps the
account JWTs it is given and accepts new or changed ones at run time on
``$SYS.REQ.CLAIMS.UPDATE``, from a user of the system account: the request
body is the JWT, signed by a key the operator trusts; the server stores it,
applies it to the live account (limits, imports, revocations) and answers
JSON::

    {"data": {"code": 200, "account": "<public key>", "message": "jwt updated"}}
    {"error": {"code": 500, "account": "<public key>", "description": "..."}}

(nats-server ``server/jwt.go``/``accounts.go``: ``respondToUpdate``.)

:class:`PeopleRegistrar` pushes a person's account JWT
(:func:`~tradebus.natsauth.accounts.person_account_jwt`) there, and issues
their credentials. Disabling re-issues the same account with no connection
allowed and every user JWT issued until now revoked: nats-server refuses new
connections and closes the open ones at once. Registering again enables the
account again (a later JWT replaces it), and unexpired credentials issued
before work again: hand out short-lived ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client as NATS

from tradebus.common.bus import connect
from tradebus.natsauth import accounts
from tradebus.natsauth.claims import ClaimsError, KeyPair, UserNats, decode, parse_creds
from tradebus.natsauth.identities import IdentityError, read_key
from tradebus.natsauth.permissions import CLAIMS_UPDATE


class RegistrarError(RuntimeError):
    """nats-server did not take an account JWT, or could not be asked; the message says why."""


class PeopleRegistrar:
    """Registers people as NATS accounts of a running nats-server, disables them, and
    issues their credentials.

    Parameters
    ----------
    nats_url
        The server (no credentials in it).
    sys_creds
        Path of the ``.creds`` of a system-account user allowed to publish
        ``$SYS.REQ.CLAIMS.UPDATE`` (``DIR/creds/sys.creds`` of ``tradebus nats-init``).
    operator_signing, people_signing
        The operator signing key (signs accounts) and the people signing key (signs
        people's users).
    tradebus_public_key
        The public key of the account ``TRADEBUS`` (which exports people's subjects).
    timeout
        Seconds to wait for the server's answer to one update.
    """

    def __init__(
        self,
        nats_url: str,
        sys_creds: str,
        operator_signing: KeyPair,
        people_signing: KeyPair,
        tradebus_public_key: str,
        timeout: float = 5.0,
    ) -> None:
        if operator_signing.kind != "operator":
            raise ClaimsError("the operator signing key must be an operator key")
        if people_signing.kind != "account":
            raise ClaimsError("the people signing key must be an account key")
        self.nats_url = nats_url
        self.sys_creds = sys_creds
        self.operator_signing = operator_signing
        self.people_signing = people_signing
        self.tradebus_public_key = tradebus_public_key
        self.timeout = timeout
        self._nc: NATS | None = None

    @classmethod
    def from_files(
        cls,
        nats_url: str,
        nats_creds: str,
        nats_sys_creds: str,
        nats_operator_signing_key_file: str,
        nats_people_signing_key_file: str,
        timeout: float = 5.0,
    ) -> PeopleRegistrar:
        """The registrar of the gateway, from the paths of its settings: its own
        ``.creds`` (a ``TRADEBUS`` user: its issuer is the account ``TRADEBUS``), the SYS
        claims-update ``.creds`` and the two signing keys (files of one seed each).
        Nothing is connected yet (:meth:`connect`, or the first request).

        Raises
        ------
        IdentityError
            If a file is missing, unreadable, or not the kind of key or credentials
            it must be (the message names the file).
        """
        operator_signing = read_key(Path(nats_operator_signing_key_file), "operator")
        people_signing = read_key(Path(nats_people_signing_key_file), "account")
        for path in (nats_creds, nats_sys_creds):
            _check_creds(Path(path))
        own_jwt, _ = parse_creds(Path(nats_creds).read_text())
        tradebus = decode(own_jwt, UserNats).iss
        return cls(nats_url, nats_sys_creds, operator_signing, people_signing, tradebus, timeout)

    async def connect(self) -> None:
        """Connect to the server as the SYS claims-update user (if not connected).

        Raises
        ------
        RegistrarError
            If the server cannot be reached or refuses the credentials.
        """
        if self._nc is not None and not self._nc.is_closed:
            return
        try:
            self._nc = await connect(
                self.nats_url, "tradebus-registrar", creds=self.sys_creds, connect_timeout=5
            )
        except (OSError, nats.errors.Error) as exc:
            raise RegistrarError(
                f"cannot reach NATS as the SYS claims-update user: {exc}"
            ) from None

    async def close(self) -> None:
        """Close the SYS connection (if open)."""
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()
        self._nc = None

    async def __aenter__(self) -> PeopleRegistrar:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def account_public_key(self, user: str) -> str:
        """The public key of ``user``'s NATS account (derived: the same every time)."""
        return accounts.person_account_key(self, user).public_key

    async def register(self, user: str) -> str:
        """Create (or enable again, or update) ``user``'s NATS account on the running
        server; return its public key. Idempotent: registering twice is harmless.

        Raises
        ------
        tradebus.common.subjects.SubjectError
            If ``user`` is not a valid subject token.
        RegistrarError
            If the server cannot be asked or refuses the JWT (its reason in the message).
        """
        public_key, token = accounts.person_account_jwt(self, user)
        await self._push(public_key, token)
        return public_key

    async def disable(self, user: str, account_public_key: str) -> None:
        """Make ``user`` unable to use NATS: their account admits no connection, every
        credential issued so far is revoked, and their open connections are closed by
        the server. :meth:`register` enables the account again.

        Raises
        ------
        ClaimsError
            If ``account_public_key`` is not ``user``'s account.
        RegistrarError
            If the server cannot be asked or refuses the JWT.
        """
        public_key, token = accounts.person_account_jwt(self, user, disabled=True)
        if account_public_key != public_key:
            raise ClaimsError(f"{account_public_key!r} is not the NATS account of {user}")
        await self._push(public_key, token)

    def credentials(self, user: str, account_public_key: str, ttl_seconds: int) -> str:
        """The text of a ``.creds`` file for ``user``, valid ``ttl_seconds``
        (:func:`~tradebus.natsauth.accounts.person_credentials`): a secret for the person
        alone (the gateway hands it over once and keeps no copy).

        Raises
        ------
        ClaimsError
            If ``account_public_key`` is not ``user``'s account or ``ttl_seconds`` <= 0.
        """
        return accounts.person_credentials(self, user, account_public_key, ttl_seconds)

    async def _push(self, public_key: str, token: str) -> None:
        await self.connect()
        assert self._nc is not None
        try:
            reply = await self._nc.request(CLAIMS_UPDATE, token.encode(), timeout=self.timeout)
        except nats.errors.NoRespondersError:
            raise RegistrarError(
                "nobody answers $SYS.REQ.CLAIMS.UPDATE: is nats-server in operator mode with"
                " a full resolver, and sys.creds a user of its system account?"
            ) from None
        except (nats.errors.TimeoutError, nats.errors.Error) as exc:
            raise RegistrarError(f"account update of {public_key} not answered: {exc}") from None
        _check_answer(public_key, reply.data)


def _check_answer(public_key: str, data: bytes) -> None:
    """Raise :class:`RegistrarError` unless ``data`` is the server's success answer for
    ``public_key``."""
    try:
        answer: dict[str, Any] = json.loads(data)
    except ValueError:
        raise RegistrarError(f"account update of {public_key}: unreadable answer") from None
    error = answer.get("error")
    if isinstance(error, dict):
        why = error.get("description") or error
        raise RegistrarError(f"nats-server refused the account JWT of {public_key}: {why}")
    ok = answer.get("data")
    if not isinstance(ok, dict) or ok.get("code") != 200 or ok.get("account") != public_key:
        raise RegistrarError(f"account update of {public_key}: unexpected answer {answer}")


def _check_creds(path: Path) -> None:
    try:
        parse_creds(path.read_text())
    except OSError as exc:
        raise IdentityError(f"{path}: cannot read the credentials: {exc.strerror}") from None
    except ClaimsError as exc:
        raise IdentityError(f"{path}: not a NATS credentials file ({exc})") from None
