#!/usr/bin/env bash
# One-command install: ./install.sh [--dev] [--gpu] [--python PYTHON]
#   creates .venv, installs mlops-lite (with test tools for --dev; with
#   onnxruntime-gpu for --gpu or when nvidia-smi finds a GPU), runs
#   `mlops-lite init`, and says what to do next. Safe to run again.
set -euo pipefail

cd "$(dirname "$0")"
DEV=0
GPU=auto
PYTHON="${PYTHON:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dev) DEV=1 ;;
    --gpu) GPU=1 ;;
    --no-gpu) GPU=0 ;;
    --python) shift; PYTHON="${1:-}" ;;
    -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

fail() { echo "install.sh: $*" >&2; exit 1; }
step() { printf '==> %s\n' "$*"; }

if [ -z "$PYTHON" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PYTHON="$candidate"; break
    fi
  done
fi
[ -n "$PYTHON" ] || fail "Python 3.11 or newer is required; found $(python3 --version 2>&1 || echo 'no python3'). Install it, or pass --python /path/to/python3.11."
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || fail "Python 3.11 or newer is required; $PYTHON is $("$PYTHON" --version 2>&1)."
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
  || fail "$PYTHON lacks venv/ensurepip (on Debian/Ubuntu: apt-get install python3-venv)."

if [ ! -x .venv/bin/python ]; then
  step "creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv || fail "could not create .venv"
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)

extras="."
[ "$DEV" = 1 ] && extras=".[dev]"
if [ "$GPU" = auto ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then GPU=1; else GPU=0; fi
fi

# A second run skips pip when nothing it installed from has changed.
stamp=".venv/.mlops-lite-installed"
want="$(cat pyproject.toml | sha256sum | cut -c1-16) dev=$DEV gpu=$GPU"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c 'import mlops_lite' 2>/dev/null; then
  step "dependencies up to date"
else
  step "installing mlops-lite ${extras#.} (about a minute the first time)"
  "${PIP[@]}" install --quiet --upgrade pip >/dev/null || true
  "${PIP[@]}" install --quiet -e "$extras" || fail "pip could not install the project; see the messages above."
  if [ "$GPU" = 1 ]; then
    step "installing onnxruntime-gpu (GPU detected or --gpu)"
    # onnxruntime and onnxruntime-gpu ship the same module, and the CPU build is a base
    # dependency: install the extra, drop the CPU build, then lay the GPU build's files back.
    gpu_extras=".[gpu]"
    [ "$DEV" = 1 ] && gpu_extras=".[dev,gpu]"
    "${PIP[@]}" install --quiet -e "$gpu_extras" || fail "could not install the gpu extra"
    "${PIP[@]}" uninstall --quiet -y onnxruntime >/dev/null 2>&1 || true
    "${PIP[@]}" install --quiet --force-reinstall --no-deps "onnxruntime-gpu>=1.18" || fail "could not install onnxruntime-gpu"
  fi
  echo "$want" > "$stamp"
fi

step "initialising the home"
.venv/bin/mlops-lite init || fail "mlops-lite init failed"

cat <<'NEXT'

mlops-lite is installed. Next:
  .venv/bin/mlops-lite demo      the whole loop on bundled data, in about a minute
  .venv/bin/mlops-lite up        the API on 127.0.0.1:8000 and the Prefect UI on 127.0.0.1:4200
  .venv/bin/mlops-lite tui       the operator dashboard
  .venv/bin/mlops-lite --help    every command
NEXT
if [ "$DEV" = 1 ]; then echo "  .venv/bin/pytest               the test suite"; fi
