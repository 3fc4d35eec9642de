"""The page in a real headless Chromium (Debian's, driven by Playwright): every tab, its main button, an image.

Screenshots go to tests/artifacts/ (ignored by git), or where LAB_SCREENSHOTS says (docs/screenshots for the
README). Where no Chromium is installed these tests skip, saying why, on a developer's machine, and fail in CI
(the CI variable set): run_tests.sh installs Debian's chromium where it can, so a CI run without it has lost its
browser check.
"""
import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from app import CSS, build_demo
from app.tabs.side_by_side import knobbed, run_label
from engines.registry import families

pytestmark = pytest.mark.slow
HANG_GUARD_MS = 300_000   # the longest any wait on the page may take before the test counts it as hung
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Screenshots: tests/artifacts/ on every run; LAB_SCREENSHOTS=docs/screenshots writes the README's instead.
ARTIFACTS = Path(os.environ.get("LAB_SCREENSHOTS") or Path(__file__).parent / "artifacts")
# (tab, its buttons in order, images the tab then shows: <img> elements, matplotlib plots included)
RUN_ALL = run_label()   # "Sample all six": a button per registered family's grid
TABS = [("Side by side", [RUN_ALL], len(families())),
        ("VAE latent space", ["Interpolate", "Map the latent space", "Decode under every class"], 6),
        ("GAN sampling", ["Sample", "Interpolate"], 3),
        ("Diffusion, step by step", ["Denoise", "Noise it", "Denoise, guided"], 9),
        ("Compare", [], 1),   # opens on its charts: no button to press
        ("Connections", ["Encode and decode, level by level", "Train, then compare the scores",
                         "Take the same noise to an image with both"], 6)]
# the tabs that open on a "What to look at." text
GUIDED = {"Side by side", "VAE latent space", "GAN sampling", "Diffusion, step by step", "Compare", "Connections"}


@pytest.fixture(scope="module")
def app_url():
    """The app, launched once for the module as app.py serves it; each test opens its own page on it."""
    if not Path(CHROMIUM).exists():
        why = f"no Chromium at {CHROMIUM}: install Debian's chromium (run_tests.sh does, as root)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; in CI the browser tests must run")
        pytest.skip(why)
    demo = build_demo()
    demo.queue(default_concurrency_limit=2)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, css=CSS)   # as app.py
    yield url
    demo.close()


@pytest.fixture(scope="module")
def browser(app_url):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_url):
    """A fresh page for each test, as a visitor who just arrived sees it (no tab, dataset, drawing or message left
    by the test before), once the landing tab's first samples are in."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    expect(page.get_by_text("The generative lab").first).to_be_visible(timeout=60_000)
    # The landing tab fills itself on load: every model's caption says how its 16 samples were drawn.
    # (Every registered family ships for MNIST, the landing dataset: tests/test_engines.py checks it.)
    expect(page.get_by_role("tabpanel").get_by_text("16 samples")).to_have_count(len(families()),
                                                                                 timeout=HANG_GUARD_MS)
    yield page
    page.close()


def image_sources(panel) -> list[str]:
    return panel.locator("img[src]").evaluate_all("images => images.map(image => image.src)")


def wait_for_new_images(panel, before: list[str]) -> None:
    """Until the panel shows an image it did not show before (a new one, or a replaced one)."""
    panel.page.wait_for_function(
        "([panel, before]) => Array.from(panel.querySelectorAll('img[src]'))"
        ".some(image => !before.includes(image.src))",
        arg=[panel.element_handle(), before], timeout=HANG_GUARD_MS)


def load_every_image(panel) -> None:
    """Make every <img> of the panel load now (not lazily) and wait until each has decoded: a full-page screenshot
    does not scroll, so an image the browser would load lazily further down is an empty frame in it."""
    panel.page.wait_for_function(
        "panel => Array.from(panel.querySelectorAll('img[src]')).every(image => {"
        "  image.loading = 'eager'; return image.complete && image.naturalWidth > 0; })",
        arg=panel.element_handle(), timeout=60_000)


def vary_inputs(panel) -> None:
    """Each seed and test-image index in the panel one up, and the latent map one row smaller, so that what the
    buttons draw differs from the pictures the tab opened on."""
    boxes = panel.locator("input[type=number]")
    for i in range(boxes.count()):
        box = boxes.nth(i)
        label = box.get_attribute("aria-label") or ""
        if re.search(r"seed|index", label, re.IGNORECASE) and box.is_visible():
            box.fill(str(int(float(box.input_value() or 0)) + 1))
            box.press("Tab")
    grid = panel.get_by_label("number input for Grid size")
    if grid.count():
        grid.fill(str(int(grid.input_value()) - 1))
        grid.press("Tab")


def labels_over_images(panel) -> list[str]:
    """Label badges that cover part of a shown image (a label should sit beside a picture, not on it)."""
    return panel.locator(".block").evaluate_all("""blocks => blocks.flatMap(block => {
        const label = block.querySelector('[data-testid="block-label"]');
        const image = block.querySelector('img[src]');
        if (!label || !image || label.offsetParent === null || image.offsetParent === null) return [];
        const a = label.getBoundingClientRect(), box = image.getBoundingClientRect();
        // the picture itself inside its <img> box (object-fit: contain centres it)
        const scale = Math.min(box.width / image.naturalWidth, box.height / image.naturalHeight);
        const w = image.naturalWidth * scale, h = image.naturalHeight * scale;
        const b = {left: box.left + (box.width - w) / 2, top: box.top + (box.height - h) / 2};
        b.right = b.left + w; b.bottom = b.top + h;
        const overlap = a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
        return overlap ? [label.innerText] : [];
    })""")


def test_the_landing_tab_shows_samples_before_any_click(page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    panel = page.get_by_role("tabpanel")     # Side by side, the first tab, as a visitor lands on it
    expect(panel.get_by_text("16 samples")).to_have_count(len(families()))   # each model's caption, no click
    expect(panel.locator("img[src]").nth(len(families()) - 1)).to_be_visible()   # and each model's samples
    page.screenshot(path=str(ARTIFACTS / "landing.png"), full_page=True)


def test_a_knob_slider_under_a_grid_redraws_that_grid_with_the_knob_named(page):
    """Issue 29: each family's fidelity-diversity knob is a slider under its grid; set to its low end, the grid is
    drawn again and its caption names the setting."""
    panel = page.get_by_role("tabpanel")
    for family in knobbed():
        low = family.knob.slider[0]
        box = panel.locator(f"#knob-{family.name} input[type=number]")
        expect(box).to_have_value(f"{family.knob.slider_default():g}")
        before = image_sources(panel.locator(f"#side-by-side-{family.name}"))
        box.fill(f"{low:g}")
        box.press("Tab")     # the number box let go: the slider's release, as a drag's end
        expect(panel.get_by_text(family.knob.label(low))).to_be_visible(timeout=HANG_GUARD_MS)
        wait_for_new_images(panel.locator(f"#side-by-side-{family.name}"), before)
    load_every_image(panel)
    page.screenshot(path=str(ARTIFACTS / "knobs.png"), full_page=True)


def test_asking_for_a_class_redraws_each_conditional_family_as_that_class(page):
    """Issue 29: "Ask for a class" set to 7 redraws every class-conditional family's grid, from the same seed, as
    its engine's sevens: the picture the browser shows, fetched from its <img>, pixel for pixel."""
    import io

    import numpy as np
    from PIL import Image

    from app.images import grid_image
    from app.inputs import DEFAULT_UI_STEPS, default_sampler
    from engines import load_engine
    conditional = [f for f in families() if f.conditional]
    assert conditional, "no class-conditional family ships"
    panel = page.get_by_role("tabpanel")
    before = {f.name: image_sources(panel.locator(f"#side-by-side-{f.name}")) for f in conditional}
    panel.get_by_label("Ask for a class").click()
    page.get_by_role("option", name="7", exact=True).click()
    for family in conditional:
        grid = panel.locator(f"#side-by-side-{family.name}")
        wait_for_new_images(grid, before[family.name])
        shown = Image.open(io.BytesIO(page.request.get(image_sources(grid)[0]).body())).convert("L")
        options = family.sampling_options(default_sampler()[0], DEFAULT_UI_STEPS)   # the page's, where it takes it
        expected = grid_image(load_engine(family.name).sample(16, seed=0, labels=7, **options)).convert("L")
        assert np.array_equal(np.asarray(shown), np.asarray(expected)), family.name
    assert page.locator(".toast-body.error").count() == 0
    load_every_image(panel)
    page.screenshot(path=str(ARTIFACTS / "ask_for_a_class.png"), full_page=True)


def test_compare_shows_how_the_models_learned_at_the_same_compute(page):
    """Issue 30's time-lapse: Compare's folded training section shows each family's frames kept while it trained
    (the shipped runs scored with --eval-every), at the compute the slider picks; its images render."""
    page.get_by_role("tab", name="Compare").click()
    panel = page.get_by_role("tabpanel")
    panel.get_by_text("How the models trained: losses, and quality at each scored checkpoint").click()
    lapse = panel.locator("#timelapse")
    lapse.locator("img[src]").first.wait_for(state="visible", timeout=HANG_GUARD_MS)
    load_every_image(panel)
    shown = lapse.locator("img[src]").first.evaluate("img => [img.naturalWidth, img.getBoundingClientRect().width]")
    assert shown[0] >= 2 * 122 and shown[1] >= 0.9 * min(shown[0], 1000)   # whole frames, not cropped thumbnails
    lapse.scroll_into_view_if_needed()
    lapse.screenshot(path=str(ARTIFACTS / "timelapse.png"))


@pytest.mark.parametrize("tab,buttons,images", TABS)
def test_tab_buttons_show_images(page, tab, buttons, images):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.get_by_role("tab", name=tab).click()
    panel = page.get_by_role("tabpanel")
    name = tab.lower().replace(" ", "_").replace(",", "")
    # as a visitor first sees it: a computed example (no empty frames) and, where the tab has one, what to look at
    panel.locator("img[src]").first.wait_for(state="visible", timeout=HANG_GUARD_MS)
    if tab in GUIDED:
        panel.get_by_text("What to look at.").first.wait_for(state="visible", timeout=HANG_GUARD_MS)
    page.screenshot(path=str(ARTIFACTS / f"{name}_before.png"), full_page=True)
    vary_inputs(panel)   # every tab opens on its defaults' pictures: a button must draw other ones
    for button in buttons:
        before = image_sources(panel)
        panel.get_by_role("button", name=button, exact=True).click()
        wait_for_new_images(panel, before)
    # every output image of the tab is rendered (an <img> with a real source inside the visible panel)
    panel.locator("img[src]").nth(images - 1).wait_for(state="visible", timeout=120_000)
    assert panel.locator("img[src]").count() >= images
    assert page.locator(".toast-body.error").count() == 0  # no error toast
    assert labels_over_images(panel) == []
    load_every_image(panel)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_guidance_step_by_step_shows_the_two_predictions_and_their_mix(page):
    """Issue 29's guidance view: asked for a class, a trajectory whose every frame shows x_t, the unconditional,
    the conditional and the guided x0; scrubbing back to an early step shows the two predictions apart."""
    page.get_by_role("tab", name="Diffusion, step by step").click()
    panel = page.get_by_role("tabpanel")
    section = panel.locator("#guided-steps")
    section.locator("img[src]").nth(3).wait_for(state="visible", timeout=HANG_GUARD_MS)   # its first visit, run
    panel.get_by_text("Classifier-free guidance moves the sampler's x0").wait_for(state="visible",
                                                                                  timeout=HANG_GUARD_MS)
    load_every_image(section)
    section.scroll_into_view_if_needed()
    section.screenshot(path=str(ARTIFACTS / "guidance.png"))


def test_the_diffusion_tab_steps_through_the_diffusion_gan(page):
    page.get_by_role("tab", name="Diffusion, step by step").click()
    panel = page.get_by_role("tabpanel")
    before = image_sources(panel)
    panel.get_by_role("button", name="Denoise with the diffusion GAN (its 4 steps)", exact=True).click()
    wait_for_new_images(panel, before)
    # The tab's first visit queues its own runs (the guided trajectory) before this click's: on a loaded machine the
    # new images above may be theirs, and this run's last step comes after them.
    panel.get_by_text("step 4/4, t = 249").wait_for(state="visible", timeout=HANG_GUARD_MS)
    assert page.locator(".toast-body.error").count() == 0
    page.screenshot(path=str(ARTIFACTS / "diffusion_gan_steps.png"), full_page=True)


@pytest.mark.parametrize("tab", ["Side by side", "VAE latent space", "GAN sampling", "Diffusion, step by step"])
def test_each_view_has_its_equations_rendered(page, tab):
    page.get_by_role("tab", name=tab).click()
    panel = page.get_by_role("tabpanel")
    panel.get_by_text("The math behind this view").click()
    panel.locator(".katex").first.wait_for(state="visible", timeout=30_000)   # LaTeX typeset, not raw $...$
    assert "$$" not in panel.inner_text()
    page.screenshot(path=str(ARTIFACTS / f"math_{tab.lower().replace(' ', '_').replace(',', '')}.png"),
                    full_page=True)


def test_the_connections_tab_typesets_its_equations(page):
    """Four views, each with its equations: the divergence view shows them open, the others fold them away."""
    page.get_by_role("tab", name="Connections").click()
    panel = page.get_by_role("tabpanel")
    panel.locator(".katex").first.wait_for(state="visible", timeout=30_000)   # the divergence view's, always open
    for i in range(3):
        panel.get_by_text("The math behind this view").nth(i).click()
    panel.get_by_text("Tweedie's formula").first.wait_for(state="visible", timeout=30_000)
    panel.get_by_text("a deterministic DDIM step is exactly Euler").first.wait_for(state="visible", timeout=30_000)
    assert "$$" not in panel.inner_text()
    page.screenshot(path=str(ARTIFACTS / "math_connections.png"), full_page=True)


def test_bad_input_shows_a_clear_message_not_a_traceback(page):
    page.get_by_role("tab", name="Side by side").click()
    panel = page.get_by_role("tabpanel")
    seed = panel.get_by_label("Seed")
    before = image_sources(panel)
    seed.fill("2.5")
    panel.get_by_role("button", name=RUN_ALL, exact=True).click()
    # The event's validator refuses it before it runs: the message stands at the refused input.
    message = panel.locator("div.validation-error")   # the message; its input is marked by the same class
    message.first.wait_for(state="visible", timeout=60_000)
    assert message.count() == 1 and "Seed must be a whole number" in message.first.inner_text()
    assert "Traceback" not in page.content() and page.locator(".toast-body.error").count() == 0
    # The previous pictures stay, with no error badge over them.
    assert image_sources(panel) == before and panel.locator(".error").count() == 0
    seed.fill("1")   # a valid seed, and other pictures than the landing's seed 0: the run below shows new ones
    # One diffusion step would start from t = 0 and return the noise: refused, saying why.
    steps = panel.get_by_label("number input for Diffusion steps")
    steps.fill("1")
    steps.press("Enter")
    panel.get_by_role("button", name=RUN_ALL, exact=True).click()
    panel.get_by_text("needs at least 2 steps: with 1 its chain starts at t = 0").wait_for(timeout=60_000)
    assert message.count() == 1 and image_sources(panel) == before
    page.screenshot(path=str(ARTIFACTS / "steps_guard.png"))
    steps.fill("50")
    steps.press("Enter")
    panel.get_by_role("button", name=RUN_ALL, exact=True).click()   # a run clears the message
    wait_for_new_images(panel, before)
    expect(message.first).to_be_hidden(timeout=30_000)


def test_a_refused_digit_index_leaves_the_vae_pictures_in_place(page):
    page.get_by_role("tab", name="VAE latent space").click()
    panel = page.get_by_role("tabpanel")
    panel.get_by_text("What to look at.").first.wait_for(state="visible", timeout=HANG_GUARD_MS)   # first visit
    expect(panel.locator("img[src]").nth(4)).to_be_visible(timeout=HANG_GUARD_MS)   # all five of its pictures
    before = image_sources(panel)
    panel.get_by_label("Digit A: index").fill("5000")
    panel.get_by_role("button", name="Interpolate", exact=True).click()
    message = panel.locator("div.validation-error")
    message.first.wait_for(state="visible", timeout=60_000)
    assert "Digit A index must be a whole number between 0 and 999" in message.first.inner_text()
    assert image_sources(panel) == before and page.locator(".toast-body.error").count() == 0


def test_the_first_stroke_on_the_sketchpad_draws(page):
    """Gradio's editor opens with no tool selected; opening the panel selects the brush for the visitor."""
    page.get_by_role("tab", name="VAE latent space").click()
    panel = page.get_by_role("tabpanel")
    panel.get_by_text("...or draw / upload digit A").click()
    canvas = panel.locator("#digit-sketch canvas").first
    canvas.wait_for(state="visible", timeout=30_000)
    # Opening the panel picked the brush: the first stroke draws.
    expect(panel.locator('#digit-sketch button[aria-label="Brush"]')).to_have_class(re.compile(r"\bhighlight\b"),
                                                                                    timeout=30_000)
    box = canvas.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.2
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(20):
        page.mouse.move(x + i % 3, y + i * box["height"] * 0.03)
    page.mouse.up()
    # The editor holds the stroke (its Undo comes alive); the click then sends the canvas as it is.
    expect(panel.locator('#digit-sketch button[aria-label="Undo"]')).to_be_enabled(timeout=30_000)
    panel.get_by_role("button", name="Interpolate", exact=True).click()
    panel.get_by_text("Digit A is your drawing").wait_for(state="visible", timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "vae_drawn_digit.png"), full_page=True)


# One lesson end to end in the browser; every lesson's claims are checked once, through the API, in
# tests/test_playground.py. Regenerating the README's screenshots also runs the lesson it shows at its end.
BROWSER_LESSONS = ["gan_collapse"] + (["gan_divergence", "straight_paths", "guidance"]
                                       if os.environ.get("LAB_SCREENSHOTS") else [])


@pytest.mark.long
def test_a_playground_lesson_runs_in_the_browser_and_ends_with_its_numbers(page):
    from engines.toy.lessons import LESSONS
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.get_by_role("tab", name="2-D playground").click()
    panel = page.get_by_role("tabpanel")
    for key in BROWSER_LESSONS:
        lesson = LESSONS[key]
        panel.get_by_label("Lesson").first.click()
        page.get_by_role("option", name=lesson.title).click()
        before = image_sources(panel)
        panel.get_by_role("button", name="Run lesson", exact=True).click()
        # While it runs, its live view is where the eye is: inside the viewport, under the button.
        wait_for_new_images(panel, before)
        # The first family's strip (the first in the page's order with a picture), once its picture has a size:
        # ":visible" alone would skip one still loading and measure the strip under it.
        first_strip = panel.locator(".family-strip img[src]").first
        expect(first_strip).to_be_visible(timeout=HANG_GUARD_MS)
        live = first_strip.bounding_box()
        assert live is not None and 0 <= live["y"] < page.viewport_size["height"], live
        if key == BROWSER_LESSONS[0]:
            page.screenshot(path=str(ARTIFACTS / "playground_midway.png"))
        done = panel.get_by_text(f"{lesson.title}: done.")
        done.wait_for(state="visible", timeout=300_000)
        assert "Every claim holds." in done.inner_text()
        # One live view per family trained; the families a lesson leaves out are hidden, not empty frames.
        shown = len(lesson.steps) + len(lesson.derived)   # and each model built from them (a reflow)
        assert panel.locator(".family-strip img[src]:visible").count() == shown
        assert panel.locator(".family-strip:visible").count() == shown
        assert page.locator(".toast-body.error").count() == 0
        page.screenshot(path=str(ARTIFACTS / f"playground_{key}.png"), full_page=True)


def choose_dataset(page, label: str):
    """Pick a dataset on the landing tab and wait for its new samples; the tab's panel."""
    page.get_by_role("tab", name="Side by side").click()
    panel = page.get_by_role("tabpanel")
    panel.locator("img[src]").nth(2).wait_for(state="visible", timeout=120_000)   # the landing samples are in
    before = image_sources(panel)
    page.get_by_label(label).check()
    wait_for_new_images(panel, before)
    return panel


@pytest.mark.long
def test_the_dataset_selector_switches_the_tabs_to_fashion_mnist_and_back(page):
    """Choosing Fashion-MNIST shows its models' samples at once (no button), renames the class choices, and the
    Compare tab shows its report with every verdict beside MNIST's; choosing MNIST brings the digits back."""
    panel = choose_dataset(page, "Fashion-MNIST (70,000 images)")
    for heading in ("Diffusion", "Latent diffusion", "Diffusion GAN"):   # every family ships for Fashion-MNIST too
        panel.locator("p:visible", has_text=re.compile(rf"^{heading}: \d+ ms")).wait_for(timeout=120_000)
    assert page.locator(".toast-body.error").count() == 0
    page.screenshot(path=str(ARTIFACTS / "fashion_side_by_side.png"), full_page=True)
    page.get_by_role("tab", name="VAE latent space").click()
    panel = page.get_by_role("tabpanel")
    panel.get_by_label("Digit B: class").click()
    page.get_by_role("option", name="7 Sneaker").wait_for(state="visible", timeout=30_000)
    page.keyboard.press("Escape")
    page.get_by_role("tab", name="Diffusion, step by step").click()   # its own diffusion GAN, enabled
    panel = page.get_by_role("tabpanel")
    hybrid = panel.get_by_role("button", name="Denoise with the diffusion GAN (its 4 steps)", exact=True)
    hybrid.wait_for(state="visible", timeout=120_000)
    assert hybrid.is_enabled()
    page.get_by_role("tab", name="Compare").click()
    panel = page.get_by_role("tabpanel")
    panel.get_by_text("The verdicts on each dataset").wait_for(state="visible", timeout=120_000)
    panel.locator("img[src]").first.wait_for(state="visible", timeout=120_000)
    load_every_image(panel)
    page.screenshot(path=str(ARTIFACTS / "fashion_compare.png"), full_page=True)
    panel = choose_dataset(page, "MNIST (5,000 digits)")
    panel.locator("p:visible", has_text=re.compile(r"^Diffusion GAN: \d+ ms")).wait_for(timeout=120_000)
    page.get_by_role("tab", name="Diffusion, step by step").click()
    hybrid = page.get_by_role("tabpanel").get_by_role("button", name="Denoise with the diffusion GAN (its 4 steps)",
                                                      exact=True)
    hybrid.wait_for(state="visible", timeout=120_000)
    assert hybrid.is_enabled()
