#!/usr/bin/env bash
# The peers' own virtualenv for `make bench-peers` (issue 21): hftbacktest, and NautilusTrader
# when a Python >= 3.12 is found. Never the project's .venv.
#   bench/peers/install.sh <uv> <dir>      (dir: .tools/peers, gitignored)
# Idempotent: returns at once when <dir>/.installed names the same pins and Python.
# Python >= 3.12, first found: $PEERS_PYTHON; pyenv's versions; python3.14/3.13/3.12 on PATH;
# `uv python find`; else `uv python install 3.12` into <dir>/python (needs the download
# host of uv's Python builds; fails where only package registries are reached). Without
# one, the venv uses the project's Python ($PYTHON, default python3) and holds hftbacktest only.
set -euo pipefail
UV=$(realpath "$1")
DIR=$2
HFTBACKTEST=hftbacktest==2.4.4
NAUTILUS=nautilus_trader==1.231.0
NUMPY="numpy>=2,<3"

ok312() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; }

find312() {
    local c
    if [[ -n "${PEERS_PYTHON:-}" ]] && ok312 "$PEERS_PYTHON"; then echo "$PEERS_PYTHON"; return; fi
    local root
    root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
    for c in $(ls -d "$root"/versions/3.1[2-9]*/bin/python 2>/dev/null | sort -rV); do
        if ok312 "$c"; then echo "$c"; return; fi
    done
    for c in python3.14 python3.13 python3.12; do
        if command -v "$c" >/dev/null && ok312 "$c"; then command -v "$c"; return; fi
    done
    c=$(UV_PYTHON_DOWNLOADS=never "$UV" python find '>=3.12' 2>/dev/null || true)
    if [[ -n "$c" ]] && ok312 "$c"; then echo "$c"; return; fi
    echo "peers: no Python >= 3.12 here; trying \`uv python install 3.12\`" >&2
    if UV_PYTHON_INSTALL_DIR="$DIR/python" UV_PYTHON_DOWNLOADS=automatic \
        "$UV" python install 3.12 >&2 2>"$DIR/uv-python-install.log"; then
        c=$(UV_PYTHON_INSTALL_DIR="$DIR/python" "$UV" python find 3.12 2>/dev/null || true)
        if [[ -n "$c" ]] && ok312 "$c"; then echo "$c"; return; fi
    fi
    echo "peers: uv python install 3.12 failed ($(tail -1 "$DIR/uv-python-install.log")):" \
        "NautilusTrader is skipped" >&2
}

mkdir -p "$DIR"
PY=$(find312 || true)
if [[ -n "$PY" ]]; then
    PKGS="$HFTBACKTEST $NAUTILUS $NUMPY"
else
    PY=$(command -v "${PYTHON:-python3}")
    PKGS="$HFTBACKTEST $NUMPY"
fi
WANT="python=$PY packages=$PKGS"
if [[ -f "$DIR/.installed" && "$(cat "$DIR/.installed")" == "$WANT" ]]; then
    echo "peers: $DIR is up to date ($WANT)"
    exit 0
fi
rm -rf "$DIR/venv" "$DIR/.installed"
echo "peers: creating $DIR/venv with $PY: $PKGS"
"$UV" venv --quiet --python "$PY" "$DIR/venv"
# shellcheck disable=SC2086
UV_PYTHON_DOWNLOADS=never "$UV" pip install --quiet --python "$DIR/venv/bin/python" $PKGS
echo "$WANT" > "$DIR/.installed"
echo "peers: installed ($WANT)"
