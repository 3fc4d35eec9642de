"""Command: `python -m engines.sampler_benchmark --help`: steps against quality for every diffusion sampler.

The code is engines/measure/sampler_benchmark.py; this module only runs it."""
import sys

from engines.measure.sampler_benchmark import main

if __name__ == "__main__":
    sys.exit(main())
