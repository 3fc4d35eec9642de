"""Command: `python -m engines.fit_typicality DIR --dataset D`: fit a feature net's typicality gate (the net's
weights stay as they are) into DIR/typicality.safetensors and record the command in DIR/training_info.json.

The gate is engines/measure/typicality.py; the classifier trainer fits it at the end of training."""
import argparse
import json
import sys
from pathlib import Path

from engines.data.datasets import LAB_DATASETS, load_lab_split
from engines.errors import EngineError
from engines.measure.typicality import fit_and_record
from engines.models.classifier import load_classifier


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fit a feature net's typicality gate on its train split")
    parser.add_argument("directory", type=Path, help="a feature net's checkpoint folder")
    parser.add_argument("--dataset", required=True, choices=list(LAB_DATASETS), help="the split it was trained on")
    args = parser.parse_args(argv)
    command = "python -m engines.fit_typicality " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        net = load_classifier(args.directory, gate=False)
        train = load_lab_split(args.dataset, "train")
        test = load_lab_split(args.dataset, "test")
        record = fit_and_record(net, args.directory, train.images, train.labels, command, test.images)
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
