#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: the offline data (Debian) and a virtualenv with pinned packages.
# Called by `make train` and `make test`; safe to run again (it skips what is already there).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "bootstrap: installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        echo "bootstrap: Fashion-MNIST missing; install it with: sudo apt-get install dataset-fashion-mnist"
    fi
fi

stamp=.venv/.installed-$(cat pyproject.toml constraints/ci.txt | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
    echo "bootstrap: creating .venv (torch 2.14.1, lightning, hydra, datasets, wandb; ~2 min)"
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    # Pinned for reproducibility (constraints/ci.txt); pyproject.toml keeps ranges for users.
    .venv/bin/pip install -q -c constraints/ci.txt -e ".[train,test]"
    rm -f .venv/.installed-* && touch "$stamp"
fi
