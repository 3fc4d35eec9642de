"""The generative lab's engines: trained VAE, GAN and diffusion models behind one sampling interface.

    from engines import available_engines, load_engine, EngineError
    load_engine("diffusion").sample(16, seed=0, sampler="ddpm", steps=100)

Where things live (each folder holds one kind of thing; a module that is a command says so on its first line):

| where                     | what lives there                                                                |
|---------------------------|---------------------------------------------------------------------------------|
| `engine.py`               | the one interface (`Engine.sample(n, seed)`), its argument checks, the seed cap  |
| `family.py`               | the `Family` record: what the lab asks about a family (title, engine, trainer,   |
|                           | colour, how evaluation samples it, which measurements apply)                    |
| `registry.py`             | which families exist: `FAMILIES`, `families`, `load_engine`, `available_engines` |
| `checkpoint.py`           | checkpoint folders: paths, file names, safetensors save/load, training state     |
| `errors.py`, `runtime.py` | `EngineError`; the hardware a run records                                        |
| `models/`                 | networks and their engines: `vae`, `gan`, `diffusion` (on `unet`), `classifier`  |
| `sampling/`               | noise `schedule`, our `samplers`, `diffusers_adapter`, latent `interpolation`    |
| `data/`                   | `datasets` (mnist5k, fashion, IDX files, image folders), `user_images`           |
| `training/`               | `base` (what trainers share), one trainer per family (`vae`, `gan`, ...) and     |
|                           | `classifier`, `trainers()` (their table), `loop` (the whole run),                |
|                           | `distributed` (processes, devices, mixed precision: accelerate),                 |
|                           | `diff_augment` (the GAN discriminator's augmentations on small data)            |
| `measure/`                | metrics (`quality`, `likelihood` and its split by level in `hierarchy`,          |
|                           | `latent`, `stability`, the feature nets' `typicality` gate), error bars, ties    |
|                           | (`uncertainty`); the `evaluation` run, its `verdicts`, `report_markdown`,        |
|                           | `reproduce`; `model_card`, `sampler_benchmark`                                    |
| `toy/`                    | the 2-D playground: toy distributions, small models, lessons, `seed_study`       |
| `train.py`, `evaluate.py`, `model_card.py`, `sampler_benchmark.py`, `fit_typicality.py` | commands:       |
|                           | `python -m engines.<name>`                                                      |
"""
from engines.engine import MAX_SAMPLES, MAX_SEED, Engine
from engines.errors import EngineError
from engines.registry import available_engines, load_engine

__all__ = ["Engine", "EngineError", "MAX_SAMPLES", "MAX_SEED", "available_engines", "load_engine"]
