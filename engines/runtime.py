"""The machine a run happens on, as training_info.json, report.json and the benchmarks record it."""
from __future__ import annotations

import os
import platform

import torch


def hardware() -> str:
    """CPU cores, torch threads, GPU and versions: enough to know what a recorded time or number came from."""
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{os.cpu_count()} CPU cores ({cpu}), {torch.get_num_threads()} torch threads, {gpu}; "
            f"torch {torch.__version__}, Python {platform.python_version()}")
