"""The gateway of ``tradebus demo``: its keys, its demo logins, its settings.

* :func:`service_keys`: execution's key pair for sealed exchange credentials
  (``<var>/keys/seal``, as ``tradebus seal-keys`` makes it) and the gateway's
  token-signing secret (``<var>/keys/gateway/token.secret``), made on the first
  run and kept, as compose's ``nats-init`` keeps them in its volume.
* :func:`create_logins`: an admin (``admin``) and one login per person of the
  accounts file, each with a fresh random password, in the ``users`` table (as
  ``tradebus users create`` adds them) and in ``<var>/gateway/logins``
  (readable by the owner only), so the demo's people can sign in and see
  their bots.
* :func:`gateway_env`: the gateway's ``TRADEBUS_*`` settings for the stack.
* :func:`built_page`: the web page's build (``web/dist``, ``make install``), if built.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

import msgspec

from tradebus.cli.localstack import free_port
from tradebus.cli.users import create_users
from tradebus.common.sealed import write_key_pair
from tradebus.ledger.users import Role
from tradebus.natsauth.identities import Installation
from tradebus.natsauth.init import write_token_secret

REPO = Path(__file__).resolve().parents[4]
DEMO_ADMIN = "admin"
"""The demo's admin login."""
DEFAULT_GATEWAY_PORT = 8080


class ServiceKeys(msgspec.Struct, frozen=True, kw_only=True):
    """Paths of execution's and the notifier's sealing key pairs and of the gateway's
    token secret."""

    seal_private: Path
    seal_public: Path
    token_secret: Path
    notify_private: Path
    notify_public: Path


class Login(msgspec.Struct, frozen=True, kw_only=True):
    """A demo login: user name, password, role."""

    user: str
    password: str
    role: Role


def service_keys(var: Path) -> ServiceKeys:
    """Make (or keep) the demo's keys under ``var/keys``; their paths.

    Raises
    ------
    tradebus.common.sealed.SealedError
        If an existing key file is not a key.
    OSError
        If the files cannot be written.
    """
    private, public, _ = write_key_pair(var / "keys" / "seal")
    notify_private, notify_public, _ = write_key_pair(var / "keys" / "seal", "notifier")
    token = var / "keys" / "gateway" / "token.secret"
    write_token_secret(token)
    return ServiceKeys(
        seal_private=private,
        seal_public=public,
        token_secret=token,
        notify_private=notify_private,
        notify_public=notify_public,
    )


def gateway_port(wanted: int) -> int:
    """``wanted`` if it is free on 127.0.0.1, else a free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", wanted))
        except OSError:
            return free_port()
    return wanted


async def create_logins(database_url: str, people: list[str], folder: Path) -> list[Login]:
    """Add ``admin`` and each of ``people`` with random passwords; write them to
    ``folder/logins`` (mode 0600, one ``user password role`` line each); the logins.

    Raises
    ------
    tradebus.cli.users.UsersError
        If a user exists already or the database cannot be reached.
    """
    logins = [Login(user=DEMO_ADMIN, password=secrets.token_urlsafe(12), role="admin")]
    logins += [Login(user=p, password=secrets.token_urlsafe(12), role="user") for p in people]
    await create_users(database_url, [(x.user, x.role, x.password) for x in logins])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "logins"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(f"{x.user} {x.password} {x.role}\n" for x in logins)
    return logins


def built_page(repo: Path = REPO) -> Path | None:
    """The web page's build folder (``<repo>/web/dist``, made by ``make install`` when
    Node.js is present), or None when it holds no ``index.html``."""
    dist = repo / "web" / "dist"
    return dist if (dist / "index.html").is_file() else None


def gateway_env(
    database_url: str,
    port: int,
    keys: ServiceKeys,
    nats_auth: Installation | None,
    web_dir: Path | None = None,
) -> dict[str, str]:
    """The gateway's settings on 127.0.0.1:``port`` for the demo's stack (its NATS URL and
    credentials are the stack's to add); with ``web_dir`` (:func:`built_page`) it also
    serves the web page at ``/``."""
    env = {
        "TRADEBUS_DATABASE_URL": database_url,
        "TRADEBUS_HTTP_HOST": "127.0.0.1",
        "TRADEBUS_HTTP_PORT": str(port),
        "TRADEBUS_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TRADEBUS_JWT_SECRET_FILE": str(keys.token_secret),
        "TRADEBUS_SEAL_PUBLIC_KEY_FILE": str(keys.seal_public),
        "TRADEBUS_NOTIFY_PUBLIC_KEY_FILE": str(keys.notify_public),
    }
    if nats_auth is not None:  # people's NATS accounts at run time
        env["TRADEBUS_NATS_SYS_CREDS"] = str(nats_auth.sys_creds)
        env["TRADEBUS_NATS_OPERATOR_SIGNING_KEY_FILE"] = str(nats_auth.operator_signing_key)
        env["TRADEBUS_NATS_PEOPLE_SIGNING_KEY_FILE"] = str(nats_auth.people_signing_key)
    if web_dir is not None:
        env["TRADEBUS_WEB_DIR"] = str(web_dir)
    return env
