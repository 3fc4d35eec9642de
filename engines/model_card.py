"""Command: `python -m engines.model_card --help`: write every checkpoint's model card from its JSON.

The code is engines/measure/model_card.py; this module only runs it."""
import sys

from engines.measure.model_card import main

if __name__ == "__main__":
    sys.exit(main())
