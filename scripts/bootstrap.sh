#!/usr/bin/env bash
# Installs what the project needs on this machine, from the project's own files:
# uv (into .data/tools if it is not on PATH) and the locked dependencies.
# Prints the uv command to use on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

want=$(cat .python-version)

has_version() {  # has_version PYTHON: it runs and is Python $want
  "$1" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$want'.split('.'))))" >/dev/null 2>&1
}

# Prints the real interpreter, never a pyenv shim: handed a shim (a script),
# `uv sync --python` deleted and rebuilt .venv on every call.
find_python() {
  for c in "python$want" python3 python; do
    if command -v "$c" >/dev/null 2>&1 && has_version "$c"; then
      "$c" -c 'import sys; print(sys.executable)'; return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    local v
    v=$(pyenv versions --bare | grep -E "^${want//./\\.}(\.|$)" | sort -V | tail -n1 || true)
    if [ -n "$v" ]; then echo "$(pyenv root)/versions/$v/bin/python"; return 0; fi
  fi
  return 1
}

if command -v uv >/dev/null 2>&1; then
  UV=$(command -v uv)
elif [ -x .data/tools/bin/uv ]; then
  UV=$PWD/.data/tools/bin/uv
else
  PY=$(find_python) || { echo "Python $want not found (install it, or pyenv install $want)" >&2; exit 1; }
  echo "[bootstrap] installing uv into .data/tools with $PY" >&2
  mkdir -p .data
  "$PY" -m venv .data/tools
  .data/tools/bin/python -m pip install --quiet --disable-pip-version-check uv >&2
  UV=$PWD/.data/tools/bin/uv
fi

# Installed packages get their bytecode compiled now: where the environment
# says PYTHONDONTWRITEBYTECODE (these machines do), Python never writes it
# itself, and every process (each worker, manage.py, gunicorn) compiled some
# 1 100 modules from source again: ~3 s of CPU at every start.
export UV_COMPILE_BYTECODE="${UV_COMPILE_BYTECODE:-1}"

# A .venv that already runs Python $want is kept as it is (uv only installs
# what changed in uv.lock); otherwise it is made with the Python found here.
# One that matches uv.lock and has had its bytecode compiled here is left
# alone: a sync with nothing to install still compiled all ~10 000 files
# again, and every `make manage` printed "Bytecode compiled 10277 files".
compiled=.venv/.doorito-bytecode
if [ -x .venv/bin/python ] && has_version .venv/bin/python; then
  if { [ "$UV_COMPILE_BYTECODE" = 0 ] || [ -e "$compiled" ]; } &&
    "$UV" sync --frozen --check >/dev/null 2>&1; then
    :
  else
    "$UV" sync --frozen >&2
  fi
elif PY=$(find_python); then
  "$UV" sync --frozen --python "$PY" >&2
else
  "$UV" sync --frozen >&2
fi
if [ "$UV_COMPILE_BYTECODE" != 0 ]; then touch "$compiled"; fi
echo "$UV"
