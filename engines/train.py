"""Command: `python -m engines.train --help`: train a family's model into a checkpoint folder.

The code is engines/training/loop.py; this module only runs it."""
import sys

from engines.training.loop import main

if __name__ == "__main__":
    sys.exit(main())
