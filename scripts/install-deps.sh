#!/usr/bin/env bash
# Installs everything the hotline needs on a fresh Debian (bookworm) machine, idempotently:
# Debian packages (Redis, sipp, mmdebstrap, sox, chromium + a CJK font) and the Python virtual environment.
# The Asterisk 22 root filesystem is built on first `hotline up` (runtime).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(redis-server sip-tester mmdebstrap sox libsox-fmt-all iproute2 procps python3-venv
              chromium fonts-wqy-microhei  # the consoles are tested in a real browser
              ffmpeg)  # uploaded prompts (m4a/mp3) are decoded by ffmpeg (speech/prompt_audio.py)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "install-deps: apt-get install ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The Debian redis-server package starts a system instance on 6379; we run our own per stack.

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[speech,dev]'
    rm -f .venv/.installed-*
    touch "$stamp"
fi
echo "install-deps: ok"
