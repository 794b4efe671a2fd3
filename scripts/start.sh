#!/usr/bin/env bash
# The original's launcher command line, kept so its users' scripts keep working:
#   ./scripts/start.sh --profile lmstudio|mlx|stable[=safe|balanced|faster] [-- extra args]
# Each profile is `lattice serve --profile ...` (see `lattice serve --help`); the environment wins
# over the profile's values, as it did. Extra arguments go to `lattice serve`.
set -euo pipefail

profile=""
forward=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="${2:?--profile needs a value: lmstudio, mlx or stable[=safe|balanced|faster]}"; shift 2 ;;
    --profile=*) profile="${1#--profile=}"; shift ;;
    --) shift; forward+=("$@"); break ;;
    *) forward+=("$1"); shift ;;
  esac
done
if [ -z "$profile" ]; then
  echo "usage: $0 --profile {lmstudio|mlx|stable[=safe|balanced|faster]} [-- extra args]" >&2
  exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lattice="$(command -v lattice || true)"
[ -n "$lattice" ] || lattice="$here/.venv/bin/lattice"
exec "$lattice" serve --profile "$profile" ${forward[@]+"${forward[@]}"}
