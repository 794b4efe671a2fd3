#!/usr/bin/env bash
# Set up everything the test suite needs and run it: lint, types, then every test (slow ones too).
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

need_debs=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_debs+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need_debs+=(wrk)
command -v redis-server >/dev/null 2>&1 || need_debs+=(redis-server)   # limits shared across replicas
[ -x /usr/bin/chromium ] || need_debs+=(chromium)            # dashboard browser test (never a downloaded browser)
[ -x /usr/bin/chromedriver ] || need_debs+=(chromium-driver)
if [ ${#need_debs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_debs[@]}" >/dev/null
  else
    echo "please install: sudo apt-get install ${need_debs[*]}" >&2
    exit 1
  fi
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# llama-cpp-python compiles llama.cpp on first install (minutes); pip caches the wheel afterwards.
.venv/bin/python -m pip install -q -e ".[all]"

.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy src
exec .venv/bin/python -m pytest "$@"
