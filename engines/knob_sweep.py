"""Command: `python -m engines.knob_sweep --help`: each family's fidelity-diversity knob, swept and measured.

The code is engines/measure/knobs.py; this module only runs it."""
import sys

from engines.measure.knobs import main

if __name__ == "__main__":
    sys.exit(main())
