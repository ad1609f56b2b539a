#!/usr/bin/env bash
# Installs the Prometheus tools into DEST/bin from Debian 12's packages, pinned below:
#   prometheus              -> prometheus, promtool
#   prometheus-alertmanager -> alertmanager (Debian names it prometheus-alertmanager), amtool
# `apt-get download` + `dpkg-deb -x`, so no package is installed and no service is set up
# or started (only Alertmanager's two default templates go to Debian's path, below). No PyPI wheel ships these binaries, and GitHub releases are not
# reachable from every machine this project runs on. The compose file runs the same
# upstream versions (prom/prometheus, prom/alertmanager; tests/unit/test_compose.py).
#
#   deploy/prometheus/install-prometheus-tools.sh DEST
#
# `make test` and `make demo PROMETHEUS=1` run it (not `make install`: the demo without
# Prometheus needs none of this, and works on any OS). If the Debian mirror no longer has
# a pinned revision (a point release replaced it), the current candidate of the same
# upstream version is taken instead, with a warning; any other upstream version fails.
#
# Not on Debian: name your own binaries of the same versions with PROMETHEUS, PROMTOOL,
# ALERTMANAGER and AMTOOL (absolute paths); they are linked into DEST/bin instead.
set -euo pipefail

DEST=${1:?usage: install-prometheus-tools.sh DEST}
# package=Debian version (the upstream version is the part before + or -)
PACKAGES=(
    "prometheus=2.42.0+ds-5+deb12u1"
    "prometheus-alertmanager=0.25.0-1+b4"
)
# binary in DEST/bin <- package:path in the package
BINARIES=(
    "prometheus<-prometheus:usr/bin/prometheus"
    "promtool<-prometheus:usr/bin/promtool"
    "alertmanager<-prometheus-alertmanager:usr/bin/prometheus-alertmanager"
    "amtool<-prometheus-alertmanager:usr/bin/amtool"
)
say() { echo "install-prometheus-tools: $*" >&2; }
upstream() { local v=${1%%+*}; echo "${v%%-*}"; }  # 2.42.0+ds-5+deb12u1 -> 2.42.0

if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    mkdir -p "$DEST/bin"
    missing=()
    for entry in "${BINARIES[@]}"; do
        name=${entry%%<-*}
        var=$(echo "$name" | tr '[:lower:]' '[:upper:]')
        path=${!var:-}
        if [ -n "$path" ] && [ -x "$path" ]; then
            ln -sf "$(cd "$(dirname "$path")" && pwd)/$(basename "$path")" "$DEST/bin/$name"
        else
            missing+=("$var")
        fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "apt-get/dpkg-deb not found (not Debian?): install Prometheus" \
            "$(upstream "${PACKAGES[0]#*=}") and Alertmanager $(upstream "${PACKAGES[1]#*=}")" \
            "yourself and set ${missing[*]} to their paths"
        exit 1
    fi
    "$DEST/bin/promtool" --version | head -1
    "$DEST/bin/amtool" --version 2>&1 | head -1
    exit 0
fi

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
# (not `apt-cache show pkg=V`: it exits 0 when V is missing)
known() {
    apt-cache madison "$1" 2>/dev/null | awk -F'|' '{gsub(/ /, "", $2); print $2}' | grep -qxF -- "$2"
}
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }

work=$(mktemp -d "${TMPDIR:-/tmp}/prometheus-tools.XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt-get download runs as the caller; as root it warns that _apt cannot write to the
# directory (harmless), so give it a directory _apt may write to.
chmod 0777 "$work"
updated=""
: > "$work/VERSIONS"
for spec in "${PACKAGES[@]}"; do
    package=${spec%%=*}
    version=${spec#*=}
    if ! known "$package" "$version" && [ -z "$updated" ]; then
        say "$package=$version unknown to apt, running apt-get update"
        sudo_if_needed apt-get update -qq
        updated=1
    fi
    if known "$package" "$version"; then
        want=$version
    else
        want=$(candidate "$package")
        if [ -n "$want" ] && [ "$(upstream "$want")" = "$(upstream "$version")" ]; then
            say "warning: $package=$version is gone from the mirror, using $want"
        else
            say "$package $version not available (candidate: ${want:-none})"
            exit 1
        fi
    fi
    (cd "$work" && apt-get download -q "$package=$want" >/dev/null)
    dpkg-deb -x "$(ls "$work/${package}_"*.deb)" "$work/$package"
    echo "$package=$want" >> "$work/VERSIONS"
done

mkdir -p "$DEST/bin"
for entry in "${BINARIES[@]}"; do
    name=${entry%%<-*}
    source=${entry#*<-}
    install -m 0755 "$work/${source%%:*}/${source#*:}" "$DEST/bin/$name.tmp"
    mv -f "$DEST/bin/$name.tmp" "$DEST/bin/$name"
done
# Debian's alertmanager reads its default notification templates from this fixed path
# (a Debian patch; upstream embeds them) and refuses to start without them: the one
# thing put outside DEST, two data files owned by no package, left alone if present.
templates=/usr/share/prometheus/alertmanager
for tmpl in default.tmpl email.tmpl; do
    if ! cmp -s "$work/prometheus-alertmanager$templates/$tmpl" "$templates/$tmpl"; then
        say "installing $templates/$tmpl (Debian's alertmanager reads it there)"
        sudo_if_needed install -D -m 0644 "$work/prometheus-alertmanager$templates/$tmpl" \
            "$templates/$tmpl"
    fi
done
mv -f "$work/VERSIONS" "$DEST/VERSIONS"
rm -f "$DEST/VERSION"  # the promtool-only script's
"$DEST/bin/promtool" --version | head -1
"$DEST/bin/amtool" --version 2>&1 | head -1
