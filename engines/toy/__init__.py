"""The 2-D playground's engines: toy distributions with exact densities, small MLP versions of the three
families (same schedule, samplers and losses as the image engines), measurements against the true density,
stepwise trainers and the preset lessons. Samples are float32 [n, 2], as the image engines' are [n, 1, 28, 28].
"""
