"""Command: `python -m engines.train --help`: train a family's model into a checkpoint folder (engines/training/loop.py)."""
import sys

from engines.training.loop import main

if __name__ == "__main__":
    sys.exit(main())
