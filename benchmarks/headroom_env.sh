#!/usr/bin/env bash
# Create benchmarks/.venv-headroom with headroom-ai, the anchor of benchmarks/tool_outputs.py.
# headroom-ai never goes into the project's .venv: the benchmark calls it in a subprocess.
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv-headroom
PYTHON=${PYTHON:-python3.11}
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
# Keep the virtualenv out of git (the repo's .gitignore only covers .venv/).
echo '*' > "$VENV/.gitignore"
"$VENV/bin/pip" install --quiet 'headroom-ai>=0.42,<0.43'
"$VENV/bin/python" -c "from importlib import metadata; print('headroom-ai', metadata.version('headroom-ai'))"
