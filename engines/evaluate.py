"""Command: `python -m engines.evaluate --help`: measure the comparison table into report.json + report.md.

The code is engines/measure/evaluation.py; this module only runs it."""
import sys

from engines.measure.evaluation import main

if __name__ == "__main__":
    sys.exit(main())
