#!/bin/sh
# Install fleetgap @VERSION@ from this offline kit; touches no network.
#
#   sh install.sh [--prefix DIR] [--bin-dir DIR] [--python PYTHON]
#
# 1. every checksum in SHA256SUMS first (a changed, missing or unlisted wheel: nothing is
#    installed); 2. a virtual environment at PREFIX (default /opt/fleetgap) with
#    `pip install --no-index` from wheels/ (an existing one is upgraded in place);
#    3. a link BIN_DIR/fleetgap (default /usr/local/bin; --bin-dir '' for none).
# Check the kit's signature first when it has one: gpg --verify SHA256SUMS.asc SHA256SUMS
set -eu
# The service user (deploy/fleetgap.service: User=fleetgap) runs what is installed here: a
# hardened host's root umask (027, 077) would leave it unreadable to everyone but root.
umask 022

VERSION='@VERSION@'
PYTHONS='@PYTHONS@'
PREFIX=/opt/fleetgap
BIN_DIR=/usr/local/bin
PYTHON=

fail() {
    echo "install.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case $1 in
        --prefix) [ $# -ge 2 ] || fail "--prefix needs a folder"; PREFIX=$2; shift 2 ;;
        --prefix=*) PREFIX=${1#*=}; shift ;;
        --bin-dir) [ $# -ge 2 ] || fail "--bin-dir needs a folder"; BIN_DIR=$2; shift 2 ;;
        --bin-dir=*) BIN_DIR=${1#*=}; shift ;;
        --python) [ $# -ge 2 ] || fail "--python needs a command"; PYTHON=$2; shift 2 ;;
        --python=*) PYTHON=${1#*=}; shift ;;
        -h|--help) sed -n '2,/^[^#]/{/^#/p;}' "$0"; exit 0 ;;
        *) fail "unknown option $1 (see --help)" ;;
    esac
done
[ -n "$PREFIX" ] || fail "--prefix must not be empty"

KIT=$(cd "$(dirname "$0")" && pwd)
case $PREFIX in /*) ;; *) PREFIX=$(pwd)/$PREFIX ;; esac

# A Python this kit has wheels for: --python, else python3, else python3.X.
python_version() {
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}
if [ -z "$PYTHON" ]; then
    for candidate in python3 $(for v in $PYTHONS; do echo "python$v"; done); do
        found=$(python_version "$candidate") || continue
        case " $PYTHONS " in *" $found "*) PYTHON=$candidate; break ;; esac
    done
    [ -n "$PYTHON" ] || fail "no Python $PYTHONS found (give --python PATH)"
fi
found=$(python_version "$PYTHON") || fail "cannot run $PYTHON"
case " $PYTHONS " in
    *" $found "*) ;;
    *) fail "$PYTHON is Python $found; this kit has wheels for Python $PYTHONS" ;;
esac

# Every checksum first; one line naming what differs, and nothing installed.
"$PYTHON" - "$KIT" <<'CHECK' || exit 1
import hashlib, os, sys
kit = sys.argv[1]
def fail(what):
    sys.exit(f"install.sh: {what}; nothing installed")
try:
    lines = open(os.path.join(kit, "SHA256SUMS"), encoding="ascii").read().splitlines()
except (OSError, UnicodeDecodeError) as exc:
    fail(f"cannot read SHA256SUMS: {exc}")
listed = {}
for number, line in enumerate(lines, 1):
    digest, sep, name = line.partition("  ")
    if not sep or len(digest) != 64 or name.startswith("/") or ".." in name.split("/"):
        fail(f"SHA256SUMS line {number} is not '<sha256>  <file>'")
    listed[name] = digest.lower()
try:
    present = {"install.sh"} | {"wheels/" + n for n in os.listdir(os.path.join(kit, "wheels"))}
except OSError as exc:
    fail(f"cannot read wheels/: {exc.strerror}")
unlisted = sorted(present - set(listed))
if unlisted:
    fail(f"{unlisted[0]} is not in SHA256SUMS")
changed = []
for name, digest in sorted(listed.items()):
    try:
        with open(os.path.join(kit, name), "rb") as handle:
            actual = hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        fail(f"{name} is missing")
    if actual != digest:
        changed.append(name)
if changed:
    fail("checksum mismatch: " + ", ".join(changed))
CHECK

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_CONFIG_FILE=/dev/null
if [ ! -x "$PREFIX/bin/python" ]; then
    made=$("$PYTHON" -m venv --without-pip "$PREFIX" 2>&1) \
        || fail "cannot make a virtual environment at $PREFIX: $(printf '%s' "$made" | tail -n 1)"
fi
set -- "$KIT"/wheels/pip-*.whl
[ -f "$1" ] || fail "the kit carries no pip wheel"
"$PREFIX/bin/python" "$1/pip" install --quiet --no-index --find-links "$KIT/wheels" \
    --upgrade "fleetgap==$VERSION" pip \
    || fail "pip install from the kit failed; see the lines above"

if [ -n "$BIN_DIR" ]; then
    mkdir -p "$BIN_DIR"
    ln -sfn "$PREFIX/bin/fleetgap" "$BIN_DIR/fleetgap"
fi
echo "fleetgap $VERSION installed in $PREFIX${BIN_DIR:+ (command: $BIN_DIR/fleetgap)}"
