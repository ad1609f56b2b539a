"""Exchange credentials sealed to execution: only the holder of execution's private key
can read them.

Execution owns an X25519 key pair. Whoever takes a user's API keys (the
gateway) seals them with execution's **public** key in a libsodium *sealed
box* (``crypto_box_seal``: an ephemeral X25519 key pair per message,
XSalsa20-Poly1305 authenticated encryption; libsodium documentation,
"Sealed boxes", https://doc.libsodium.org/public-key_cryptography/sealed_boxes,
through PyNaCl's :class:`nacl.public.SealedBox`) and stores only the
ciphertext. The sealer cannot open what it sealed; execution opens it with
its private key when it loads the account.

Inside the box is a JSON object of ccxt credential names to values
(``{"apiKey": ..., "secret": ..., "password": ...}``; ccxt's
``requiredCredentials`` names them).

Key files hold the 32-byte keys as base64 text (one line):
``execution.key`` (private, mode 0600) and ``execution.pub`` (public).
:func:`write_key_pair` makes them once and never overwrites either.

No error raised here ever holds a key or a credential's value: only file
names, lengths and what went wrong.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

import msgspec
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

PRIVATE_KEY_FILE = "execution.key"
"""The private key's file name in a key directory (mode 0600)."""
PUBLIC_KEY_FILE = "execution.pub"
"""The public key's file name in a key directory."""
KEY_BYTES = 32
"""Length of an X25519 key (private or public), in bytes."""
MAX_CREDENTIALS = 16
"""Most credentials one sealed box may hold (ccxt asks for at most a handful)."""
MAX_VALUE_CHARS = 8192
"""Longest credential value sealed (a PEM private key fits)."""


class SealedError(ValueError):
    """A key or a sealed box cannot be used; the message says why, never what is inside."""


def generate_private_key() -> PrivateKey:
    """A new random X25519 private key (libsodium's CSPRNG)."""
    return PrivateKey.generate()


def public_key_b64(private_key: PrivateKey) -> str:
    """The public key of ``private_key`` as standard base64 text (44 characters)."""
    return base64.b64encode(bytes(private_key.public_key)).decode("ascii")


def _decode_key(text: str, what: str) -> bytes:
    """The 32 bytes of a base64 key; :class:`SealedError` naming ``what`` otherwise."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SealedError(f"{what}: not base64 text") from None
    if len(raw) != KEY_BYTES:
        raise SealedError(f"{what}: {len(raw)} bytes, an X25519 key has {KEY_BYTES}")
    return raw


def write_key_pair(directory: str | Path, name: str = "execution") -> tuple[Path, Path, bool]:
    """Make ``<name>.key`` (0600) and ``<name>.pub`` in ``directory`` unless they exist
    (``execution``: exchange credentials; ``notifier``: the channels users save through
    the gateway, sealed the same way).

    Returns ``(private_path, public_path, created)``. Idempotent: an existing
    private key is kept (its public file is written if missing, from it);
    nothing is ever overwritten. The private key file is created with
    ``O_EXCL`` and mode 0600, so it is never readable by others, not even
    for a moment.

    Raises
    ------
    SealedError
        If the existing private key file is not a key, or the public file does
        not match it.
    OSError
        If the directory cannot be made or written.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    private_path, public_path = folder / f"{name}.key", folder / f"{name}.pub"
    created = False
    if not private_path.exists():
        key = generate_private_key()
        text = base64.b64encode(bytes(key)).decode("ascii") + "\n"
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(text)
        created = True
    key = load_private_key(private_path)
    public = public_key_b64(key)
    if public_path.exists():
        if load_public_key(public_path) != public:
            raise SealedError(f"{public_path}: does not match the private key {private_path}")
    else:
        public_path.write_text(public + "\n", encoding="ascii")
    return private_path, public_path, created


def load_private_key(path: str | Path) -> PrivateKey:
    """Execution's private key from ``path`` (base64 text).

    Raises
    ------
    SealedError
        If the file cannot be read or is not a key (the message names the path only).
    """
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise SealedError(f"cannot read private key file {path}: {reason}") from None
    return PrivateKey(_decode_key(text, f"private key file {path}"))


def load_public_key(path: str | Path) -> str:
    """Execution's public key from ``path``, as base64 text (checked to be a key).

    Raises
    ------
    SealedError
        If the file cannot be read or is not a key.
    """
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise SealedError(f"cannot read public key file {path}: {reason}") from None
    return base64.b64encode(_decode_key(text, f"public key file {path}")).decode("ascii")


def _check_credentials(credentials: dict[str, str]) -> None:
    if not credentials:
        raise SealedError("no credentials to seal")
    if len(credentials) > MAX_CREDENTIALS:
        raise SealedError(f"{len(credentials)} credentials (at most {MAX_CREDENTIALS})")
    for name, value in credentials.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise SealedError("credential names and values must be text")
        if not value:
            raise SealedError(f"credential {name!r} is empty")
        if len(value) > MAX_VALUE_CHARS:
            raise SealedError(f"credential {name!r} is longer than {MAX_VALUE_CHARS} characters")


def seal(public_key_b64: str, credentials: dict[str, str]) -> bytes:
    """``credentials`` (ccxt name -> value) sealed to ``public_key_b64``: the ciphertext.

    Raises
    ------
    SealedError
        If the public key is not an X25519 key in base64, or ``credentials``
        is empty, not text, or too large (never quoting a value).
    """
    _check_credentials(credentials)
    public = PublicKey(_decode_key(public_key_b64, "public key"))
    return bytes(SealedBox(public).encrypt(msgspec.json.encode(credentials)))


_CREDENTIALS = msgspec.json.Decoder(dict[str, str])


def open_sealed(private_key: PrivateKey, ciphertext: bytes) -> dict[str, str]:
    """The credentials sealed in ``ciphertext`` for ``private_key``.

    Raises
    ------
    SealedError
        If the box was sealed to another key, was changed, is truncated, or
        does not hold a JSON object of text values. The message never holds
        any part of the plaintext.
    """
    try:
        plain = SealedBox(private_key).decrypt(bytes(ciphertext))
    except (CryptoError, ValueError, TypeError):
        raise SealedError(
            "sealed credentials cannot be opened: sealed to another key, changed or truncated"
        ) from None
    try:
        credentials = _CREDENTIALS.decode(plain)
    except msgspec.MsgspecError:
        raise SealedError("sealed credentials are not a JSON object of text values") from None
    finally:
        del plain
    return credentials
