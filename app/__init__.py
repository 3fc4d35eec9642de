"""The generative lab's Gradio UI. `app.py` at the repository root launches it (with `CSS`)."""
from app.ui import CSS, build_demo

__all__ = ["CSS", "build_demo"]
