"""DDPM training in one screen, top to bottom (in the spirit of nanoGPT's train.py and minDiffusion's
superminddpm.py): settings, data, model, loop. Any setting, or any DiffusionConfig field, is `key=value`:

    python scripts/minimal_ddpm.py steps=2000 out=runs/minimal_ddpm base_channels=16

A readable twin of `python -m engines.train diffusion`, which adds what a real run needs (resume, logs,
checkpoints, several processes, gradient accumulation, mixed precision). With the same seed and settings both
write the same weights, bit for bit (tests/test_minimal_ddpm.py), so this page cannot drift from the real loop.
The folder it writes loads like any diffusion checkpoint: `load_engine("diffusion", out)`.
"""
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, when run as a script
from engines.checkpoint import save_pretrained  # noqa: E402
from engines.data.datasets import load_dataset, to_signed  # noqa: E402
from engines.models.diffusion import DiffusionConfig, DiffusionModel  # noqa: E402

# --- settings: the defaults of `python -m engines.train diffusion` --------------------------------------
seed = 0
dataset = "mnist5k"
steps = 20000
batch_size = 64
lr = 5e-4
warmup_steps = 200      # the learning rate ramps up linearly over these first steps (Adam's early steps are wild)
ema_decay = 0.999       # what ships is a moving average of the weights: smoother samples than the last step's
clip = 1.0              # gradient-norm clipping
out = "runs/minimal_ddpm"
model_settings = {}     # DiffusionConfig fields (base_channels, channel_mults, num_train_timesteps, ...)
setting_names = [k for k, v in globals().items() if not k.startswith("_") and isinstance(v, (int, float, str))]
for arg in sys.argv[1:]:  # key=value, as nanoGPT's configurator
    key, _, text = arg.partition("=")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    if key in setting_names:
        globals()[key] = value
    else:
        model_settings[key] = tuple(value) if isinstance(value, list) else value

# --- data: images [N, 1, 28, 28] in [0, 1] ------------------------------------------------------------
data = load_dataset(dataset, "train")

# --- model: the lab's UNet eps_theta(x_t, t) and the noise schedule it is trained on --------------------
torch.manual_seed(seed)  # the initial weights
model = DiffusionModel(DiffusionConfig(**model_settings))
schedule, T = model.schedule, model.config.num_train_timesteps
ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)  # copies, then lerps
optimizer = torch.optim.Adam(model.parameters(), lr=lr)

# --- loop: Ho et al. 2020, Algorithm 1 ------------------------------------------------------------------
for step in range(steps):
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)  # the step's own stream: a resumed run repeats it
    x0 = to_signed(data.images[torch.randint(0, len(data), (batch_size,), generator=g)])  # x0 ~ q(x0), in [-1, 1]
    t = torch.randint(0, T, (batch_size,), generator=g)          # t ~ Uniform({0, ..., T-1})
    noise = torch.randn(x0.shape, generator=g)                   # eps ~ N(0, I)
    x_t = schedule.q_sample(x0, t, noise)                        # sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (eq. 4)
    loss = F.mse_loss(model(x_t, t), noise)                      # |eps - eps_theta(x_t, t)|^2 (eq. 14, L_simple)

    for group in optimizer.param_groups:
        group["lr"] = lr * min(1.0, (step + 1) / warmup_steps) if warmup_steps else lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    ema.update_parameters(model)
    if step % 100 == 0 or step == steps - 1:
        print(f"step {step}: loss {loss.item():.4f}")

save_pretrained(ema.module, Path(out))  # config.json + model.safetensors of the averaged weights
print(f"saved {out}")
