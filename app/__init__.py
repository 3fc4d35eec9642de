"""The generative lab's Gradio UI. `app.py` at the repository root launches it."""
from app.ui import build_demo

__all__ = ["build_demo"]
