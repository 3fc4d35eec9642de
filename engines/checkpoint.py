"""A checkpoint folder: where they live, what files it holds, saving and loading them.

A folder (checkpoints/<dataset>/<name>/) holds config.json + model.safetensors (the shipped model),
training_info.json (command, data, hardware, time), train_log.jsonl and quality_log.jsonl (what training
recorded) and, while a run can still be resumed, training_state.safetensors. A family that trains networks beyond
the one it ships (a GAN's discriminator) ships them beside it as <name>.safetensors (weights only), so that a shipped
checkpoint can be trained on without the run's optimiser state.

Shipped models are `PyTorchModelHubMixin` modules whose `__init__` takes one dataclass `config`, so
`save_pretrained` / `push_to_hub` write exactly what `load_pretrained` below reads. We load local folders
ourselves rather than through `from_pretrained` because that one loads non-strictly and would fall back to a
pickled `pytorch_model.bin`; here a checkpoint is safetensors only and must match its config exactly.

Training state (weights, EMA, optimiser moments, step) is one safetensors file too, its scalar settings in
the header's metadata: nothing is ever unpickled.

On the Hugging Face Hub a model is the same config.json + model.safetensors plus a README.md whose front matter
is the metadata each model class declares (`hub_metadata`) and whose text is our own model card
(`push_to_hub` below; `python -m engines.train ... --push-to-hub REPO`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import TypeVar

import safetensors.torch
import torch
from safetensors import SafetensorError

from engines.data.datasets import check_lab_dataset
from engines.errors import EngineError

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_ROOT = REPO_ROOT / "checkpoints"
CHECKPOINTS = CHECKPOINT_ROOT / "mnist"   # the default lab dataset's models

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
STATE_NAME = "training_state.safetensors"
TRAINING_INFO_NAME = "training_info.json"
LOG_NAME = "train_log.jsonl"             # losses, one JSON object per logged step
QUALITY_LOG_NAME = "quality_log.jsonl"   # the score of each checkpoint (engines.train --eval-every)

M = TypeVar("M", bound=torch.nn.Module)

# Hub metadata of the model classes. The project states no license and has no public repository yet: both
# stay unset (the Hub then shows none) until whoever publishes decides them.
HUB_LIBRARY = "generative-lab"
HUB_REPO_URL: str | None = None
HUB_LICENSE: str | None = None
# The README.md that save_pretrained / push_to_hub write: the class's metadata as front matter, then our card.
HUB_CARD_TEMPLATE = ("---\n{{ card_data }}\n---\n\n"
                     "{{ card | default('Trained with the generative lab: `python -m engines.train`.', true) }}\n")


def checkpoints_dir(dataset: str = "mnist") -> Path:
    """Where a lab dataset's shipped models live: checkpoints/<dataset>/."""
    return CHECKPOINT_ROOT / check_lab_dataset(dataset)


def hub_metadata(*tags: str, pipeline_tag: str = "unconditional-image-generation") -> dict:
    """The PyTorchModelHubMixin class arguments of a shipped model class:
    `class VAE(nn.Module, PyTorchModelHubMixin, **hub_metadata("vae"))`."""
    return {"library_name": HUB_LIBRARY, "repo_url": HUB_REPO_URL, "license": HUB_LICENSE,
            "pipeline_tag": pipeline_tag, "tags": [HUB_LIBRARY, *tags], "model_card_template": HUB_CARD_TEMPLATE}


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSON-lines log ([] when there is none yet)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_config(config_cls: type, directory: Path):
    """The dataclass stored in directory/config.json; unknown or mistyped fields are an error."""
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise EngineError(f"{path} is missing: a checkpoint folder needs {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        raw = json.loads(path.read_text())
        names = {f.name for f in dataclasses.fields(config_cls)}
        unknown = set(raw) - names
        if unknown:
            raise TypeError(f"unknown fields {sorted(unknown)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        return config_cls(**values)
    except (json.JSONDecodeError, TypeError, AttributeError) as e:
        raise EngineError(f"{path} is not a valid {config_cls.__name__}: {e}. Re-export the checkpoint "
                          f"with `python -m engines.train`.") from e


def load_pretrained(model_cls: type[M], config_cls: type, directory: str | Path) -> M:
    """Build model_cls(config) from directory/config.json and load directory/model.safetensors strictly."""
    directory = Path(directory)
    if not directory.is_dir():
        raise EngineError(f"checkpoint folder {directory} does not exist")
    config = read_config(config_cls, directory)
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise EngineError(f"{weights} is missing: train one with `python -m engines.train` or restore it "
                          f"from git")
    try:
        model = model_cls(config)
    except (ValueError, TypeError, RuntimeError) as e:
        raise EngineError(f"{directory / CONFIG_NAME} describes a model that cannot be built: {e}") from e
    try:
        missing, unexpected = safetensors.torch.load_model(model, weights, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
    except (SafetensorError, RuntimeError, OSError) as e:
        raise EngineError(f"{weights} does not match {CONFIG_NAME} or is corrupt ({e}). Check that both files "
                          f"come from the same training run.") from e
    return model.eval()


def save_pretrained(model: torch.nn.Module, directory: str | Path) -> None:
    """Write config.json + model.safetensors through the hub mixin, via a temporary folder, atomically
    per file, so a crash mid-save never leaves a half-written weight file."""
    directory = Path(directory)
    tmp = directory / ".export.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        os.replace(tmp / name, directory / name)
    for leftover in tmp.iterdir():
        leftover.unlink()
    tmp.rmdir()


# Files a checkpoint folder may hold beside its weights: what loading it needs (a feature net's typicality gate),
# and what training on from it needs (a GAN's discriminator: `save_companions`).
SHIPPED_EXTRAS = ("typicality.safetensors", "discriminator.safetensors")


def companion_path(directory: str | Path, name: str) -> Path:
    return Path(directory) / f"{name}.safetensors"


def save_companions(directory: str | Path, modules: dict[str, torch.nn.Module]) -> None:
    """Each network a family trains beside its shipped model (by name: "discriminator"), weights only, each file
    replaced atomically like the model's."""
    for name, module in modules.items():
        path = companion_path(directory, name)
        temporary = path.with_name(path.name + ".tmp")
        safetensors.torch.save_file({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()},
                                    str(temporary))
        temporary.replace(path)


def load_companion(directory: str | Path, name: str, module: torch.nn.Module) -> None:
    """Load `save_companions`' file of `name` into `module`, strictly."""
    module.load_state_dict(safetensors.torch.load_file(str(companion_path(directory, name))))


def push_to_hub(model: torch.nn.Module, repo_id: str, card: str, folder: Path | None = None) -> str:
    """Upload config.json, model.safetensors and README.md (the class's Hub metadata + `card`) to the Hub model
    repository repo_id, created if needed, in one commit; then each of `SHIPPED_EXTRAS` that `folder` holds.
    Needs network and a token (`hf auth login` or HF_TOKEN). Returns the first commit's URL."""
    url = model.push_to_hub(repo_id, model_card_kwargs={"card": card},
                            commit_message="Upload from python -m engines.train")
    from huggingface_hub import hub_mixin  # its HfApi, the one push_to_hub used
    for name in SHIPPED_EXTRAS:
        if folder is not None and (Path(folder) / name).is_file():
            hub_mixin.HfApi().upload_file(path_or_fileobj=str(Path(folder) / name), path_in_repo=name,
                                          repo_id=repo_id, commit_message=f"Upload {name} from python -m engines.train")
    return url


# --- training state -------------------------------------------------------------------------------

def optimizer_tensors(name: str, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Split an optimiser state dict into tensors (for safetensors) and plain settings (for JSON)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for param_id, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{name}.state.{param_id}.{key}"] = value.contiguous()
            else:
                scalars[f"{param_id}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(name: str, optimizer: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict] = {}
    prefix = f"{name}.state."
    for key, value in tensors.items():
        if key.startswith(prefix):
            param_id, field = key[len(prefix):].split(".", 1)
            state.setdefault(int(param_id), {})[field] = value
    for key, value in meta["scalars"].items():
        param_id, field = key.split(".", 1)
        state.setdefault(int(param_id), {})[field] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_training_state(directory: Path, modules: dict, optimizers: dict, meta: dict) -> None:
    """One safetensors file, replaced atomically; its header metadata carries the step and settings, so
    tensors and step can never disagree after a kill -9."""
    tensors, opt_meta = {}, {}
    for name, module in modules.items():
        tensors.update({f"{name}.{k}": v.detach().contiguous() for k, v in module.state_dict().items()})
    for name, optimizer in optimizers.items():
        t, m = optimizer_tensors(name, optimizer)
        tensors.update(t)
        opt_meta[name] = m
    tmp = directory / (STATE_NAME + ".tmp")
    safetensors.torch.save_file(tensors, tmp, metadata={"meta": json.dumps({**meta, "optimizers": opt_meta})})
    os.replace(tmp, directory / STATE_NAME)


def load_training_state(directory: Path, modules: dict, optimizers: dict) -> dict:
    """Restore modules and optimisers in place; returns the saved meta (step, elapsed time, ...)."""
    path = directory / STATE_NAME
    try:
        with safetensors.safe_open(path, framework="pt") as f:
            meta = json.loads(f.metadata()["meta"])
        tensors = safetensors.torch.load_file(path)
    except (OSError, KeyError, json.JSONDecodeError, SafetensorError) as e:
        raise EngineError(f"cannot resume from {path}: {e}. Remove it to start over.") from e
    for name, module in modules.items():
        prefix = name + "."
        module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    for name, optimizer in optimizers.items():
        restore_optimizer(name, optimizer, tensors, meta["optimizers"][name])
    return meta


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file (a weights file's identity: which parent a model was built on)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
