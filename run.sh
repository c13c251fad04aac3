#!/usr/bin/env bash
# The project's two entry points:
#   ./run.sh serve [crossway serve options]   set up .venv and run the gateway
#   ./run.sh test  [pytest options]           set up .venv with dev tools and run the tests
# Any other first argument is run as a crossway subcommand inside the venv.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

ensure_venv() {  # $1: extras ("" or "dev")
    local want="${1:-}" stamp=".venv/.crossway-installed"
    local key
    key="$(sha256sum pyproject.toml | cut -c1-16)-${want}"
    if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
    if [ ! -f "$stamp" ] || ! grep -qx -- "$key" "$stamp" 2>/dev/null; then
        # a dev install also satisfies a plain one
        if [ -z "$want" ] && [ -f "$stamp" ] && grep -q -- "-dev$" "$stamp"; then return; fi
        .venv/bin/python -m pip install -q --upgrade pip >/dev/null
        if [ -n "$want" ]; then .venv/bin/pip install -q -e ".[$want]"; else .venv/bin/pip install -q -e .; fi
        echo "$key" > "$stamp"
    fi
}

cmd="${1:-serve}"; shift || true
case "$cmd" in
    serve) ensure_venv ""; exec .venv/bin/crossway serve "$@" ;;
    test)
        ensure_venv dev
        set +e
        .venv/bin/python -m pytest "$@"
        rc=$?
        # pytest's exit code 5 means no test ran: that is a failure here, never a pass
        if [ "$rc" -eq 5 ]; then echo "no tests ran" >&2; exit 1; fi
        exit "$rc" ;;
    *) ensure_venv ""; exec .venv/bin/crossway "$cmd" "$@" ;;
esac
