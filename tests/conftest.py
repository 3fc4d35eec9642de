import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

torch.set_num_threads(1)  # as app.py serves: one core per request (small models are slower with more threads)

# Tiny model shapes so training tests take seconds; the same code paths as the shipped models.
TINY = {
    "vae": ["latent_dim=4", "channels=8", "hidden_dim=32"],
    "gan": ["latent_dim=8", "g_channels=8", "d_channels=8"],
    "diffusion": ["base_channels=8", "channel_mults=[1,2]", "num_train_timesteps=50"],
    "classifier": ["channels=4", "feature_dim=16"],
}
