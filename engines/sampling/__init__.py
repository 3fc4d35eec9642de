"""Diffusion sampling and latent paths: the noise schedule, our samplers (plain functions over model and
schedule), the adapter that runs any diffusers scheduler on our model, and lerp/slerp between latents."""
