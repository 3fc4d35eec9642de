"""Launch the generative lab (also the Hugging Face Space entry point).

    python app.py [--host 127.0.0.1] [--port 7860] [--share] [--no-browser]

Run locally it opens the page in a browser once the models are loaded (not on a Space, not with --host other
than localhost, not with --no-browser). A busy port is reported before any model loads.
"""
import argparse
import os
import socket

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from app import CSS, build_demo  # noqa: E402  (the package app/, after the environment is set)

LOCAL_HOSTS = ("127.0.0.1", "localhost")


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The generative lab: VAE, GAN and diffusion side by side.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link")
    parser.add_argument("--no-browser", action="store_true", help="do not open the page in a browser")
    args = parser.parse_args(argv)
    if not port_is_free(args.host, args.port):
        parser.exit(2, f"error: port {args.port} on {args.host} is in use (another lab or server?). Pick "
                       f"another with --port, e.g. python app.py --port {args.port + 1}\n")
    return args


def main() -> None:
    args = parse_args()
    from app import serving
    serving.limit_malloc_arenas()   # before the server's threads start
    serving.warm_up()   # every model loaded, every tab's first visit computed, before the first visitor
    demo = serving.queue(build_demo())
    on_space = bool(os.environ.get("SPACE_ID"))
    open_browser = not (args.no_browser or on_space or args.share or args.host not in LOCAL_HOSTS)
    _, local_url, share_url = demo.launch(server_name=args.host, server_port=args.port, share=args.share,
                                          show_error=True, inbrowser=open_browser, quiet=True, css=CSS,
                                          prevent_thread_lock=True)
    print(f"The generative lab is running on {local_url}" + (f" and {share_url}" if share_url else "")
          + ("" if args.share or on_space else " (python app.py --share for a public link)"), flush=True)
    demo.block_thread()


if __name__ == "__main__":
    main()
