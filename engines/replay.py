"""Command: `python -m engines.replay --help`: a shipped run's early checkpoints scored, by replaying its command.

The code is engines/measure/replay.py; this module only runs it."""
import sys

from engines.measure.replay import main

if __name__ == "__main__":
    sys.exit(main())
