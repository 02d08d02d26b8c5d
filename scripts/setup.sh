#!/usr/bin/env bash
# Set up Edge Agent in this checkout on a fresh Debian 12 / Raspberry Pi OS machine:
# Debian packages when missing (mosquitto for the demo and tests, python3-venv, a
# Chinese font for the gateway's ECG sheets),
# then the project's own venv in .venv with the pip packages. Safe to run again.
#   bash scripts/setup.sh         runtime, terminal UI, ECG file formats, gateway sheets
#   bash scripts/setup.sh --dev   + test, lint and type-check tools
set -euo pipefail
cd "$(dirname "$0")/.."

extras="tui,ecg,gateway"
if [ "${1:-}" = "--dev" ]; then
    extras="dev"
fi

missing=()
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    missing+=(mosquitto)
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
# A Chinese font for the 12-lead sheets the gateway draws (patient names, statements).
if [ -z "$(fc-list :lang=zh 2>/dev/null)" ]; then
    missing+=(fonts-wqy-microhei)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo_cmd=(sudo)
    fi
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${extras}]"
echo "setup: ready (.venv, extras: ${extras})"
