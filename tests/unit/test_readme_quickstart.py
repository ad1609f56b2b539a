"""The README's quick start puts ``tradebus`` on PATH before any command uses it.

Issue 20, item 2: ``tradebus --help`` as the README wrote it was "command not found".
The quick start's first step is ``make cli`` (a link to ``.venv/bin/tradebus`` in
``~/.local/bin``); this runs that target into a temporary directory and the linked
command, and checks that no ``tradebus`` command of the README comes before the step.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def code_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of every line inside a fenced code block."""
    out: list[tuple[int, str]] = []
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            inside = not inside
        elif inside:
            out.append((number, line))
    return out


def test_the_quick_start_puts_tradebus_on_path_before_any_command_uses_it() -> None:
    lines = code_lines(README.read_text(encoding="utf-8"))
    step = next(n for n, line in lines if re.match(r"make cli\b", line))
    uses = [n for n, line in lines if re.match(r"\s*(\$ )?tradebus\s", line)]
    assert uses, "the README shows no tradebus command"
    assert step < min(uses), f"README line {min(uses)} runs tradebus before `make cli` ({step})"
    first_block = README.read_text(encoding="utf-8").split("```sh\n", 1)[1].split("```", 1)[0]
    assert first_block.startswith("make cli"), "make cli is the quick start's first step"


def test_make_cli_links_a_working_tradebus_and_says_whether_it_is_on_path(
    tmp_path: Path,
) -> None:
    bin_dir = tmp_path / "bin"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["make", "--no-print-directory", "cli", f"CLI_DIR={bin_dir}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    link = bin_dir / "tradebus"
    assert link.is_symlink() and link.resolve() == (REPO / ".venv/bin/tradebus").resolve()
    assert "tradebus is on PATH" in done.stdout, done.stdout
    # the linked command runs from anywhere, outside the virtualenv
    clean = {k: v for k, v in env.items() if k != "VIRTUAL_ENV"}
    shown = subprocess.run(
        ["tradebus", "--help"], cwd=tmp_path, env=clean, capture_output=True, text=True
    )
    assert shown.returncode == 0 and "demo" in shown.stdout, shown.stdout + shown.stderr
    # a CLI_DIR that is not on PATH: it says how to add it
    other = tmp_path / "elsewhere"
    said = subprocess.run(
        ["make", "--no-print-directory", "cli", f"CLI_DIR={other}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert said.returncode == 0 and f"{other} is not on PATH" in said.stdout, said.stdout
