"""The generative lab's engines: trained VAE, GAN and diffusion models behind one sampling interface."""
from engines.engine import MAX_SAMPLES, Engine, available_engines, load_engine
from engines.errors import EngineError

__all__ = ["Engine", "EngineError", "MAX_SAMPLES", "available_engines", "load_engine"]
