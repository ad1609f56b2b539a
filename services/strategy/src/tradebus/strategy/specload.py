"""A host's bot file, read and validated in a forked child process.

PyYAML builds the whole node tree of a document before constructing its data,
about fifty times the file's size: a 3.9 MB bot file of 10,000 bots peaked at
197 MiB (``ru_maxrss`` of :func:`~tradebus.common.configfile.read_doc` alone),
which a long-running host would keep as its peak RSS and, fragmented, in its
heap. A forked child (it inherits the host's market catalog as it is, venue
rules learned) reads the file with
:func:`~tradebus.strategies.botfile.load_specs` and sends the specs back as
JSON over a pipe; the host's memory never holds the tree.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from multiprocessing.connection import Connection

import msgspec

from tradebus.common.config import ConfigError
from tradebus.common.markets import MarketCatalog
from tradebus.strategies.botfile import load_specs
from tradebus.strategies.registry import BotSpec

_specs = msgspec.json.Decoder(list[BotSpec])


def _child(path: str, catalog: MarketCatalog, out: Connection) -> None:
    """In the child: ``(b"ok", specs JSON)``, or ``(b"config", message)`` for an invalid
    file, or ``(b"error", repr)`` for anything else."""
    try:
        out.send((b"ok", msgspec.json.encode(load_specs(path, catalog))))
    except ConfigError as exc:
        out.send((b"config", str(exc).encode()))
    except Exception as exc:
        out.send((b"error", repr(exc).encode()))
    finally:
        out.close()


async def load_specs_apart(path: str, catalog: MarketCatalog) -> list[BotSpec]:
    """:func:`~tradebus.strategies.botfile.load_specs` of ``path`` against ``catalog``, done
    in a forked child process (module docstring; forked from the event loop's thread,
    the answer awaited in another, so the loop keeps running). Where ``fork`` is
    missing (not POSIX), in this process.

    Raises
    ------
    ConfigError
        If the file is invalid (the message is ``load_specs``' own: every error at its line).
    RuntimeError
        If the child failed otherwise (its error's ``repr``).
    """
    if not hasattr(os, "fork"):
        return load_specs(path, catalog)
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(path, catalog, send), daemon=True)
    child.start()
    send.close()
    try:
        kind, payload = await asyncio.to_thread(receive.recv)
    except EOFError:
        kind, payload = b"error", b"the child reading it exited without an answer"
    finally:
        receive.close()
        await asyncio.to_thread(child.join)
    if kind == b"ok":
        return _specs.decode(payload)
    if kind == b"config":
        raise ConfigError(payload.decode())
    raise RuntimeError(f"bot file {path} not read: {payload.decode()}")
