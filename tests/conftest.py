import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

torch.set_num_threads(1)  # as app.py serves: one core per request (small models are slower with more threads)

# Tiny model shapes so training tests take seconds; the same code paths as the shipped models.
TINY = {
    "vae": ["latent_dim=4", "channels=8", "hidden_dim=32"],
    "gan": ["latent_dim=8", "g_channels=8", "d_channels=8"],
    "diffusion": ["base_channels=8", "channel_mults=[1,2]", "num_train_timesteps=50"],
    "classifier": ["channels=4", "feature_dim=16"],
}


import pytest  # noqa: E402

BROWSER_TESTS = "test_browser.py"
_browser_outcomes: dict[str, int] = {}


def pytest_collection_modifyitems(config, items):
    """The tests marked `long` first (a stable sort keeps the rest in file order): the workers take them at the
    start, not one worker alone at the end while the other idles."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


def pytest_runtest_logreport(report):
    """Count how the real-browser tests ended, so a run says whether the browser actually ran."""
    if BROWSER_TESTS in report.nodeid and (report.when == "call" or report.outcome != "passed"):
        _browser_outcomes[report.outcome] = _browser_outcomes.get(report.outcome, 0) + 1


def pytest_terminal_summary(terminalreporter):
    if _browser_outcomes:
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(_browser_outcomes.items()))
        terminalreporter.write_line(f"browser tests (real headless Chromium): {counts}")


# The cheap evaluation: every section of `python -m engines.evaluate` on tiny settings (seconds per section).
CHEAP_EVALUATION = [
    "--threads", "1", "--n", "30", "--diffusion-steps", "5", "--likelihood-n", "3", "--vlb-strata", "6",
    "--ode-steps", "3", "--iwae-k", "4", "--latent-pairs", "2", "--latent-steps", "4", "--latent-ddim-steps", "3",
    "--recon-n", "4", "--inversion-steps", "3", "--speed-steps", "2", "--speed-batch", "8", "--seed-runs", "2",
    "--seed-steps", "400", "--seed-steps-hybrid", "800"]


@pytest.fixture(scope="session")
def cheap_report(tmp_path_factory) -> Path:
    """The cheap evaluation's report.json (report.md beside it), run once per test run and shared by the tests
    that read a freshly made report; `--check` of it is the one rerun."""
    from engines.measure.evaluation import main
    path = tmp_path_factory.mktemp("cheap-evaluation") / "report.json"
    assert main(CHEAP_EVALUATION + ["--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def client():
    """The app launched on a free local port, as app.py serves it, driven through gradio_client."""
    from gradio_client import Client

    from app import build_demo
    demo = build_demo()
    demo.queue(default_concurrency_limit=2)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    yield Client(url, verbose=False)
    demo.close()


def fashion_or_skip():
    """The installed Fashion-MNIST folder; where it is missing, skip saying why, or fail in CI (the CI variable
    set): run_tests.sh installs the Debian package where it can, so a CI run without it has lost these checks."""
    from engines.data.datasets import FASHION_DIR
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").exists():
        why = f"no Fashion-MNIST in {FASHION_DIR}: apt-get install dataset-fashion-mnist (run_tests.sh does, as root)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; in CI the Fashion-MNIST tests must run")
        pytest.skip(why)
    return FASHION_DIR
