"""``tradebus users create --admin NAME``: the first admin, on a real (fresh) ledger."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import asyncpg
import pytest

from tradebus.cli.main import main
from tradebus.ledger.passwords import Passwords


def tradebus(*argv: str) -> int:
    try:
        main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    raise AssertionError("tradebus did not exit")


async def fetch(url: str, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


def test_users_create_admin_on_a_fresh_database(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "password"
    secret.write_text("first-admin-password\n")
    url = ("--database-url", database_url)
    code = tradebus("users", "create", "--admin", "boss", "--password-file", str(secret), *url)
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "boss" in out.out and "first-admin-password" not in out.out + out.err

    rows = asyncio.run(fetch(database_url, "SELECT * FROM users"))
    assert [(r["id"], r["role"], r["disabled_ns"]) for r in rows] == [("boss", "admin", None)]
    stored = rows[0]["password_hash"]
    assert stored.startswith("$argon2id$") and "first-admin-password" not in stored
    assert asyncio.run(Passwords().verify(stored, "first-admin-password"))
    audit = asyncio.run(
        fetch(database_url, "SELECT actor, source, action, target, after FROM audit_log")
    )
    assert [(a["source"], a["action"], a["target"]) for a in audit] == [
        ("cli", "user.create", "user:boss")
    ]
    assert audit[0]["actor"].startswith("cli:") and "argon2" not in str(audit[0]["after"])

    # a second time: refused (exit 1), nothing changed
    assert tradebus("users", "create", "boss", "--password-file", str(secret), *url) == 1
    assert "exists" in capsys.readouterr().err
    # a plain user from standard input
    pipe = io.StringIO("a-user-password\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sys.stdin", pipe)
        assert tradebus("users", "create", "carol", "--password-file", "-", *url) == 0
    capsys.readouterr()
    assert tradebus("users", "list", *url) == 0
    assert capsys.readouterr().out.splitlines() == ["boss\tadmin\tactive", "carol\tuser\tactive"]


def test_users_create_refuses_clearly(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ("--database-url", database_url)
    short = tmp_path / "short"
    short.write_text("short\n")
    assert tradebus("users", "create", "--admin", "x", "--password-file", str(short), *url) == 2
    assert "password: must be at least 10 characters" in capsys.readouterr().err
    good = tmp_path / "good"
    good.write_text("long-enough-password\n")
    assert tradebus("users", "create", "a.b", "--password-file", str(good), *url) == 2
    assert "name 'a.b'" in capsys.readouterr().err
    missing = str(tmp_path / "missing")
    assert tradebus("users", "create", "x", "--password-file", missing, *url) == 2
    assert "--password-file: cannot read" in capsys.readouterr().err
    # no terminal and no file: it says how, instead of reading a password from argv
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sys.stdin", io.StringIO(""))
        assert tradebus("users", "create", "x", *url) == 2
    assert "--password-file" in capsys.readouterr().err
    # a database that is not there: the URL without its password
    down = "postgresql://someone:hunter2-secret@127.0.0.1:1/nothing"
    code = tradebus("users", "create", "x", "--password-file", str(good), "--database-url", down)
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach the database" in err and "hunter2-secret" not in err
    with pytest.raises(SystemExit):
        main(["users", "create", "x", "--password", "on-the-command-line"])
    capsys.readouterr()
    # every refusal came before the database was touched
    rows = asyncio.run(fetch(database_url, "SELECT to_regclass('public.users') AS t"))
    assert rows[0]["t"] is None
