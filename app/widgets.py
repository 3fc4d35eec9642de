"""Small pieces of browser behaviour shared by the tabs."""
from __future__ import annotations


def pick_brush(elem_id: str) -> str:
    """Browser code that selects a sketchpad's brush once it is on the page, so that the first stroke draws
    (Gradio's editor opens with no tool selected and ignores strokes until one is picked). Run when the folded
    panel holding the sketchpad opens; it retries for a few seconds while the panel renders."""
    return ("() => { let tries = 0; const pick = () => { "
            f"const brush = document.querySelector('#{elem_id} button[aria-label=\"Brush\"]'); "
            "if (brush && brush.offsetParent !== null) { if (!brush.classList.contains('highlight')) brush.click(); }"
            " else if (tries++ < 30) setTimeout(pick, 100); }; setTimeout(pick, 100); }")
