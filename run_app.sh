#!/usr/bin/env bash
# Sets up .venv on first use, then starts the lab: bash run_app.sh [--host 0.0.0.0] [--port 7860] [--share]
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh requirements.txt
# Fashion-MNIST (--dataset fashion) comes from Debian's package, as on Hugging Face Spaces (packages.txt).
if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
      || echo "run_app.sh: could not install dataset-fashion-mnist; --dataset fashion needs it, or --data-dir with its IDX files"
  else
    echo "run_app.sh: Fashion-MNIST missing and cannot be installed here (needs root + apt-get: apt-get install dataset-fashion-mnist); --dataset fashion needs it, or --data-dir with its IDX files"
  fi
fi
exec .venv/bin/python app.py "$@"
