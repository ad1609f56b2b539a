"""``tradebus-nats-init``: compose's one-shot that makes the installation's keys: the NATS
identities and, when asked, execution's key pair for sealed exchange credentials.

The same as ``tradebus nats-init`` (:func:`~tradebus.natsauth.identities.init_installation`),
driven by settings instead of a command line, so it runs from a service image
(compose's ``nats-init``, before nats-server starts):

* ``TRADEBUS_NATS_DIR``: the identities directory (compose: the volume ``nats-auth``);
* ``TRADEBUS_ACCOUNTS_FILE``: the people to preload (empty: none);
* ``TRADEBUS_RESOLVER_DIR``: where nats-server keeps account JWTs (a path of the
  server's container; default ``<NATS_DIR>/jwt``);
* ``TRADEBUS_FILE_OWNER``: ``uid:gid`` to give every file and directory made
  (compose runs the one-shot as root on a fresh volume, and the services, which
  run as uid 10001, read their ``.creds`` of mode 0600). Empty: leave as made.
* ``TRADEBUS_SEAL_DIR``: also make execution's key pair there, as ``tradebus
  seal-keys`` does (:func:`tradebus.common.sealed.write_key_pair`:
  ``execution.key`` for execution alone, ``execution.pub`` for the gateway;
  kept if there). Empty: none.
* ``TRADEBUS_TOKEN_SECRET_FILE``: also make the gateway's token-signing secret
  there (48 random bytes, URL-safe base64, mode 0600; kept if there), which the
  gateway reads as ``TRADEBUS_JWT_SECRET_FILE``. Empty: none.
* ``TRADEBUS_PEOPLE_CREDS_HOURS``: also (re)issue the credentials of every person
  preloaded, as ``<NATS_DIR>/people/<name>.creds`` (mode 0600), valid that many hours:
  what compose's ``nats-box`` mounts for the NATS CLI (README "Manual orders"). 0: none.

Exit status: 0 done, 2 bad settings or files (the reason on stderr).
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from tradebus.common.config import ConfigError, Settings, load_settings
from tradebus.common.sealed import SealedError, write_key_pair
from tradebus.common.subjects import SubjectError
from tradebus.natsauth.accounts import person_account_key, person_credentials
from tradebus.natsauth.identities import (
    IdentityError,
    Installation,
    init_installation,
    people_of,
    write_secret,
)


class NatsInitSettings(Settings, frozen=True, kw_only=True):
    """Settings of ``tradebus-nats-init`` (module docstring)."""

    nats_dir: str = "/var/lib/tradebus/nats-auth"
    accounts_file: str = ""
    resolver_dir: str = ""
    file_owner: str = ""
    seal_dir: str = ""
    token_secret_file: str = ""
    people_creds_hours: float = 0.0
    log_level: str = "info"


def parse_owner(value: str) -> tuple[int, int] | None:
    """``(uid, gid)`` of ``"uid:gid"``; None for ``""``.

    Raises
    ------
    ConfigError
        If it is not two non-negative integers separated by ``:``.
    """
    if not value:
        return None
    uid, sep, gid = value.partition(":")
    if not (sep and uid.isdigit() and gid.isdigit()):
        raise ConfigError(f"TRADEBUS_FILE_OWNER={value!r}: must be <uid>:<gid> (numbers)")
    return int(uid), int(gid)


def give_to(directory: Path, owner: tuple[int, int]) -> None:
    """``chown`` ``directory`` and everything under it to ``owner`` (uid, gid).

    Raises
    ------
    OSError
        If a file cannot be given (not running as root, say).
    """
    os.chown(directory, *owner)
    for root, dirs, files in os.walk(directory):
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), *owner, follow_symlinks=False)


TOKEN_SECRET_BYTES = 48
"""Random bytes of the gateway's token-signing secret (HS256 wants at least 32)."""


def write_token_secret(path: Path) -> bool:
    """Write a fresh token-signing secret to ``path`` (mode 0600, made with ``O_EXCL``)
    unless the file exists; True if it was made.

    Raises
    ------
    OSError
        If the directory or the file cannot be made.
    """
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secrets.token_urlsafe(TOKEN_SECRET_BYTES) + "\n")
    return True


PEOPLE_CREDS_DIR = "people"
"""Where :func:`write_people_creds` puts the people's ``.creds`` (under the identities)."""


def write_people_creds(done: Installation, hours: float) -> dict[str, Path]:
    """Issue a ``.creds`` file valid ``hours`` hours for every person preloaded in
    ``done`` (``<dir>/people/<name>.creds``, mode 0600, replacing an older one; the
    folder is made even without people, and the file of anyone not preloaded any more
    is removed); name -> path.

    Raises
    ------
    ConfigError
        If ``hours`` is not positive, or under a second.
    """
    seconds = int(hours * 3600)
    if seconds <= 0:
        raise ConfigError(f"TRADEBUS_PEOPLE_CREDS_HOURS={hours}: must be a positive number")
    folder = done.directory / PEOPLE_CREDS_DIR
    folder.mkdir(mode=0o700, exist_ok=True)  # even empty: compose mounts it (nats-box)
    written = {}
    for person in done.people:
        account = person_account_key(done.identities, person).public_key
        path = folder / f"{person}.creds"
        write_secret(path, person_credentials(done.identities, person, account, seconds))
        written[person] = path
    for stale in folder.glob("*.creds"):  # someone no longer in the accounts file
        if stale.stem not in written:
            stale.unlink()
    return written


def run(settings: NatsInitSettings) -> Installation:
    """Make (or keep) the identities of ``settings`` and write nats-server's config; and
    execution's and the notifier's sealing key pairs if ``seal_dir`` is set, the gateway's
    token secret if ``token_secret_file`` is, the people's credentials if
    ``people_creds_hours`` is.

    Raises
    ------
    ConfigError
        If the accounts file, ``file_owner`` or ``people_creds_hours`` is invalid.
    IdentityError, SubjectError, OSError
        As :func:`~tradebus.natsauth.identities.init_installation`.
    SealedError
        If ``seal_dir`` holds a key file that is not a key, or a mismatched pair.
    """
    owner = parse_owner(settings.file_owner)
    people = people_of(Path(settings.accounts_file)) if settings.accounts_file else []
    directory = Path(settings.nats_dir)
    done = init_installation(directory, people, settings.resolver_dir or None)
    if settings.people_creds_hours:
        write_people_creds(done, settings.people_creds_hours)
    if owner is not None:
        give_to(directory, owner)
    if settings.seal_dir:
        write_key_pair(settings.seal_dir)
        write_key_pair(settings.seal_dir, "notifier")  # users' notification channels
        if owner is not None:
            give_to(Path(settings.seal_dir), owner)
    if settings.token_secret_file:
        secret = Path(settings.token_secret_file)
        write_token_secret(secret)
        if owner is not None:
            give_to(secret.parent, owner)
    return done


def main() -> None:
    """Entry point of ``tradebus-nats-init``."""
    try:
        settings = load_settings(NatsInitSettings)
        done = run(settings)
    except (ConfigError, IdentityError, SubjectError, SealedError, OSError) as exc:
        print(f"tradebus-nats-init: {exc}", file=sys.stderr)
        sys.exit(2)
    people = ", ".join(done.people) or "none"
    print(f"{done.conf}: operator mode, people preloaded: {people}")
    print(f"credentials: {', '.join(sorted(done.creds))} in {done.directory / 'creds'}")
    if settings.seal_dir:
        print(f"sealing key pair of execution in {settings.seal_dir}")
    if settings.token_secret_file:
        print(f"gateway's token secret: {settings.token_secret_file}")
    if settings.people_creds_hours and done.people:
        folder = done.directory / PEOPLE_CREDS_DIR
        print(f"people's credentials ({settings.people_creds_hours:g} h): {folder}")
