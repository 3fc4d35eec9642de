"""The page's tabs, one module each: its handlers, then `build(dataset)`, the tab's layout.

side_by_side, vae_latent, gan, diffusion, compare, connections; the 2-D playground is `app.playground`."""
