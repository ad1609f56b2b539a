#!/usr/bin/env bash
# Installs Prometheus' binaries (prometheus, promtool) into DEST/bin from Debian's
# `prometheus` package: `apt-get download` + `dpkg-deb -x`, so nothing is installed
# system-wide and no service is set up or started. No PyPI wheel ships promtool, and
# GitHub releases are not reachable from every machine this project runs on.
#
#   deploy/prometheus/install-promtool.sh DEST [DEBIAN_VERSION]
#
# DEBIAN_VERSION pins the package (default below). If the Debian mirror no longer has
# that exact revision (a point release replaced it), the current candidate of the same
# upstream version is taken instead, with a warning; any other upstream version fails.
set -euo pipefail

DEST=${1:?usage: install-promtool.sh DEST [DEBIAN_VERSION]}
VERSION=${2:-2.42.0+ds-5+deb12u1}
UPSTREAM=${VERSION%%+*}  # 2.42.0

# Not on Debian: a promtool of your own, named by $PROMTOOL, is linked in instead.
if [ -n "${PROMTOOL:-}" ] && [ -x "$PROMTOOL" ] && ! command -v dpkg-deb >/dev/null; then
    mkdir -p "$DEST/bin"
    ln -sf "$(cd "$(dirname "$PROMTOOL")" && pwd)/$(basename "$PROMTOOL")" "$DEST/bin/promtool"
    "$DEST/bin/promtool" --version | head -1
    exit 0
fi
if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    echo "install-promtool: apt-get/dpkg-deb not found (not Debian?): install promtool $UPSTREAM" \
         "yourself and set PROMTOOL=/path/to/promtool" >&2
    exit 1
fi

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

candidate() { apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}'; }
# (not `apt-cache show prometheus=V`: it exits 0 when V is missing)
known() {
    apt-cache madison prometheus 2>/dev/null | awk -F'|' '{gsub(/ /, "", $2); print $2}' \
        | grep -qxF -- "$VERSION"
}

if ! known; then
    echo "install-promtool: prometheus=$VERSION unknown to apt, running apt-get update" >&2
    sudo_if_needed apt-get update -qq
fi
if known; then
    want=$VERSION
else
    want=$(candidate)
    case "$want" in
        "$UPSTREAM"+*)
            echo "install-promtool: warning: prometheus=$VERSION is gone from the mirror, using $want" >&2 ;;
        *)
            echo "install-promtool: prometheus $VERSION not available (candidate: ${want:-none})" >&2
            exit 1 ;;
    esac
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/promtool.XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt-get download runs as the caller; as root it warns that _apt cannot write to the
# directory (harmless), so give it a directory _apt may write to.
chmod 0777 "$work"
(cd "$work" && apt-get download -q "prometheus=$want" >/dev/null)
deb=$(ls "$work"/prometheus_*.deb)
dpkg-deb -x "$deb" "$work/root"

mkdir -p "$DEST/bin"
for bin in prometheus promtool; do
    install -m 0755 "$work/root/usr/bin/$bin" "$DEST/bin/$bin.tmp"
    mv -f "$DEST/bin/$bin.tmp" "$DEST/bin/$bin"
done
echo "$want" > "$DEST/VERSION"
"$DEST/bin/promtool" --version | head -1
