"""A small epsilon-prediction UNet for 28x28 images (DDPM's architecture, scaled down for a CPU).

Resolutions 28 -> 14 -> 7, residual blocks with a time embedding, self-attention at 7x7. The time embedding
is sinusoidal over a *float* timestep, so samplers that use fractional timesteps (Euler, Heun) work too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# Images per pass when no gradient is taken. Every image's computation is its own (group norm, attention within
# an image), so a sampler's batch of 250 in chunks of 64 gives the same numbers up to float rounding (a CPU's
# convolution kernels may be chosen by batch size; the shipped UNets' came out bit for bit on the lab's CPU) and
# runs ~2x faster per image there (a chunk's activations stay in cache).
INFERENCE_CHUNK = 64


@dataclass
class UNetConfig:
    """The architecture: the one place these fields are declared (DiffusionConfig extends it)."""
    image_channels: int = 1
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)   # widths per resolution 28, 14, 7 as multiples of base_channels
    blocks_per_level: int = 1
    attention_at_lowest: bool = True
    dropout: float = 0.0


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps t [B] -> [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = group_norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.norm = group_norm(channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)
        out, _ = self.attn(tokens, tokens, tokens, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class UNet(nn.Module):
    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        ch = config.base_channels
        emb_dim = ch * 4
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.stem = nn.Conv2d(config.image_channels, ch, 3, padding=1)

        widths = [ch * m for m in config.channel_mults]
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        skip_widths, prev = [ch], ch
        for level, width in enumerate(widths):
            for _ in range(config.blocks_per_level):
                self.down_blocks.append(ResBlock(prev, width, emb_dim, config.dropout))
                prev = width
                skip_widths.append(prev)
            if level < len(widths) - 1:
                self.downsamples.append(nn.Conv2d(prev, prev, 3, stride=2, padding=1))
                skip_widths.append(prev)

        self.mid1 = ResBlock(prev, prev, emb_dim, config.dropout)
        self.mid_attn = SelfAttention(prev) if config.attention_at_lowest else nn.Identity()
        self.mid2 = ResBlock(prev, prev, emb_dim, config.dropout)

        self.up_blocks = nn.ModuleList()
        for width in reversed(widths):
            for _ in range(config.blocks_per_level + 1):
                self.up_blocks.append(ResBlock(prev + skip_widths.pop(), width, emb_dim, config.dropout))
                prev = width
        self.out = nn.Sequential(group_norm(prev), nn.SiLU(), nn.Conv2d(prev, config.image_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, extra_embedding: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the noise in x_t. t: [B] or scalar timesteps, integer or float, in [0, T). extra_embedding
        [B, 4 * base_channels], when given, is added to the time embedding that every residual block reads
        (how the diffusion GAN's generator receives its latent z)."""
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])
        if torch.is_grad_enabled() or x.shape[0] <= INFERENCE_CHUNK:
            return self.predict(x, t, extra_embedding)
        return torch.cat([self.predict(x[i:i + INFERENCE_CHUNK], t[i:i + INFERENCE_CHUNK],
                                       None if extra_embedding is None else extra_embedding[i:i + INFERENCE_CHUNK])
                          for i in range(0, x.shape[0], INFERENCE_CHUNK)])

    def predict(self, x: torch.Tensor, t: torch.Tensor, extra_embedding: torch.Tensor | None) -> torch.Tensor:
        """forward's work on one batch, t already [B]."""
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels))
        if extra_embedding is not None:
            emb = emb + extra_embedding
        h = self.stem(x)
        skips = [h]
        levels = len(self.config.channel_mults)
        blocks = iter(self.down_blocks)
        for level in range(levels):
            for _ in range(self.config.blocks_per_level):
                h = next(blocks)(h, emb)
                skips.append(h)
            if level < levels - 1:
                h = self.downsamples[level](h)
                skips.append(h)

        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)

        blocks = iter(self.up_blocks)
        for level in reversed(range(levels)):
            for _ in range(self.config.blocks_per_level + 1):
                h = next(blocks)(torch.cat([h, skips.pop()], dim=1), emb)
            if level > 0:
                h = F.interpolate(h, size=skips[-1].shape[-2:], mode="nearest")
        return self.out(h)
