"""Launch the generative lab (also the Hugging Face Space entry point).

    python app.py [--host 127.0.0.1] [--port 7860] [--share]
"""
import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from app import build_demo  # noqa: E402  (the package app/, after the environment is set)

CONCURRENCY = 2  # CPU-bound work: more parallel requests than cores only slows each one down
TORCH_THREADS = 1  # one core per request, two requests at a time: no oversubscription on 2 cores


def main() -> None:
    parser = argparse.ArgumentParser(description="The generative lab: VAE, GAN and diffusion side by side.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link")
    args = parser.parse_args()
    import torch
    torch.set_num_threads(TORCH_THREADS)
    from app.handlers import engine
    for name in ("vae", "gan", "diffusion"):
        engine(name)  # load every model once, before the first visitor
    demo = build_demo()
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, show_error=True)


if __name__ == "__main__":
    main()
