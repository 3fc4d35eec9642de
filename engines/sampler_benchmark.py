"""Command: `python -m engines.sampler_benchmark --help`: measure the steps/quality trade-off of every diffusion sampler (engines/measure/sampler_benchmark.py)."""
import sys

from engines.measure.sampler_benchmark import main

if __name__ == "__main__":
    sys.exit(main())
