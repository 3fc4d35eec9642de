"""Command: `python -m engines.ship --help`: copy a finished run into checkpoints/<dataset>/<family>.

The code is engines/training/ship.py; this module only runs it."""
import sys

from engines.training.ship import main

if __name__ == "__main__":
    sys.exit(main())
