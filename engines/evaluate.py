"""Command: `python -m engines.evaluate --help`: measure the comparison table on the shipped models into report.json + report.md (engines/measure/evaluation.py)."""
import sys

from engines.measure.evaluation import main

if __name__ == "__main__":
    sys.exit(main())
