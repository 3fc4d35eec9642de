"""The networks of each family and the engine that samples from each: vae, gan, diffusion (on the unet), and
the classifier that judges samples and embeds them for the metrics."""
