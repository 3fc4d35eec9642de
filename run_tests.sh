#!/usr/bin/env bash
# Sets up .venv and the browser on first use, then runs the whole test suite: bash run_tests.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh requirements-test.txt
# Browser tests use Debian's chromium (never a downloaded browser); install it where we can.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "run_tests.sh: could not install chromium; browser tests will skip (and fail where CI is set)"
  else
    echo "run_tests.sh: chromium missing and cannot be installed here (needs root + apt-get); browser tests will skip (and fail where CI is set)"
  fi
fi
# Fashion-MNIST (--dataset fashion) comes from Debian's package, as on Hugging Face Spaces (packages.txt).
if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
      || echo "run_tests.sh: could not install dataset-fashion-mnist; Fashion-MNIST tests will skip (and fail where CI is set)"
  else
    echo "run_tests.sh: Fashion-MNIST missing and cannot be installed here (needs root + apt-get: apt-get install dataset-fashion-mnist); Fashion-MNIST tests will skip (and fail where CI is set)"
  fi
fi
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1
# Two workers (pytest-xdist) keep two cores busy: every test sets torch to one thread (tests/conftest.py), so on
# CI's 2 cores the suite takes about half its one-process time. Each test file goes to one worker (--dist
# loadfile): its module fixtures (an app server, a browser, 40,000 images' features) are then built once, not
# once per worker as xdist's default, which deals a file's tests out to both, would. LAB_TEST_WORKERS=0 runs it in
# one process; a later -n or --dist in the arguments wins.
exec .venv/bin/python -m pytest -n "${LAB_TEST_WORKERS:-2}" --dist loadfile "$@"
