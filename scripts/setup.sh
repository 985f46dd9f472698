#!/usr/bin/env bash
# Set up everything the studio needs, on a fresh machine or an old one: a virtual environment in .venv,
# PyTorch (the CPU build when there is no NVIDIA GPU), the studio itself and its test tools.
# Safe to run again: it reinstalls only when pyproject.toml or the GPU situation changed.
#   bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then device=gpu; else device=cpu; fi
wanted="$(sha256sum pyproject.toml | cut -c1-16) $device"
stamp=.venv/.studio-setup
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  if [ "$device" = cpu ]; then
    # Install the CPU build first: a bare torch requirement pulls several GB of CUDA wheels. Elsewhere, point
    # TORCH_INDEX_URL at PyTorch's CPU wheel index to get the CPU build.
    pip install -q ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==2.13.0"
  fi
  pip install -q -e ".[test]"
  echo "$wanted" > "$stamp"
fi

# GGUF export drives llama.cpp's own converter, which ships inside llama-cpp-python's source package: fetched once
# (77 MB download, 2 MB kept in .venv/share/rlhf-studio). See studio/publish/converter.py.
if ! python -c "from studio.publish import converter; raise SystemExit(not converter.available())"; then
  rlhf-studio install-gguf-converter
fi
# llama-cpp-python itself, which the GGUF tests load an export with, compiles llama.cpp from source: about 6 minutes
# on 2 cores. It is installed from a wheel built before on this machine; RLHF_STUDIO_BUILD_LLAMA_CPP=1 builds that
# wheel first. Without it the two tests that load a GGUF skip, saying why.
llama_wheels="${XDG_CACHE_HOME:-$HOME/.cache}/rlhf-studio/wheels"
if ! python -c "import llama_cpp" 2>/dev/null; then
  if [ "${RLHF_STUDIO_BUILD_LLAMA_CPP:-0}" = 1 ] && ! ls "$llama_wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" pip wheel -q --no-deps -w "$llama_wheels" "llama-cpp-python==0.3.36"
  fi
  if ls "$llama_wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    pip install -q --find-links "$llama_wheels" --only-binary llama-cpp-python "llama-cpp-python==0.3.36"
  else
    echo "note: llama-cpp-python is not installed (RLHF_STUDIO_BUILD_LLAMA_CPP=1 builds it, about 6 minutes);" \
      "the tests that load a GGUF export with llama.cpp will be skipped" >&2
  fi
fi

# The browser test drives Debian's chromium through playwright (playwright's own browser download cannot reach
# its servers from every machine). Installed here when missing and this user may install packages.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"; else sudo=none; fi
  if [ "$sudo" != none ] && command -v apt-get >/dev/null 2>&1; then
    $sudo apt-get install -y -q chromium >/dev/null || { $sudo apt-get update -q >/dev/null && \
      $sudo apt-get install -y -q chromium >/dev/null; }
  else
    echo "note: /usr/bin/chromium is missing and cannot be installed here; the browser test will be skipped" >&2
  fi
fi
