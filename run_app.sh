#!/usr/bin/env bash
# Sets up .venv on first use, then starts the lab: bash run_app.sh [--host 0.0.0.0] [--port 7860] [--share]
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh requirements.txt
exec .venv/bin/python app.py "$@"
