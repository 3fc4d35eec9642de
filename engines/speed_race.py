"""Command: `python -m engines.speed_race --help`: quality against network evaluations, every few-step sampler.

The code is engines/measure/speed_race.py; this module only runs it."""
import sys

from engines.measure.speed_race import main

if __name__ == "__main__":
    sys.exit(main())
