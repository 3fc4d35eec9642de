"""Images in, as tensors: the datasets the lab trains and measures on, and digits a visitor draws or uploads."""
