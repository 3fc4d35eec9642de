"""Command: `python -m engines.model_card --help`: write each checkpoint's model card (README.md) from its training_info.json and report.json (engines/measure/model_card.py)."""
import sys

from engines.measure.model_card import main

if __name__ == "__main__":
    sys.exit(main())
