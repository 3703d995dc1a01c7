"""A real browser on the chat page: Debian's chromium, headless, driven by Playwright.

It loads the page, picks a trial, asks a question and reads the answer with its confidence, then uploads a broken
file and reads the message. The page serves a real (tiny, untrained) BiomechGPT model folder and a QA corpus, built
by tests/test_chat_model.py's `build_real_model`; the trials' motions are decoded from their codes.

Needs: `apt-get install chromium` (/usr/bin/chromium) and `pip install playwright` (never `playwright install`: its
browser download cannot work here). Skips with the reason when either is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from test_chat import free_port
from test_chat_model import build_real_model

CHROMIUM = os.environ.get("BIOMECHGPT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser_page():
    pytest.importorskip("gradio", reason="the chat extra (gradio) is not installed")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="biomechgpt-chromium-")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield context.new_page()
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    pytest.importorskip("gradio", reason="the chat extra (gradio) is not installed")
    from biomechgpt.chat.app import build_app, launch_app

    model_dir, corpus_dir = build_real_model(tmp_path_factory.getbasetemp() / "chat-real-model")
    demo = build_app(model_dir, dataset_dir=corpus_dir, max_upload_mb=1)
    port = free_port()
    launch_app(demo, port=port, block=False, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def choose_trial(page, label_start: str) -> None:
    page.locator("#trial input").click()
    page.get_by_role("option").filter(has_text=label_start).first.click()


def ask(page, question: str) -> None:
    page.locator("#question textarea").fill(question)
    page.locator("#ask").click()


def test_browser_select_ask_and_bad_upload(browser_page, app_url, tmp_path):
    page = browser_page
    page.goto(app_url, wait_until="domcontentloaded")
    page.locator("#trial input").wait_for(timeout=30_000)
    assert page.title() == "BiomechGPT chat"
    expect = pytest.importorskip("playwright.sync_api").expect

    choose_trial(page, "t001 · train")
    expect(page.locator("#status")).to_contain_text("Selected trial t001", timeout=20_000)
    page.locator("#details").get_by_text("Trial details").click()  # folded away until asked for
    expect(page.locator("#metadata")).to_contain_text("running")
    expect(page.locator("#stick-figure svg.stick-figure")).to_have_count(1)
    expect(page.locator("#curves img").first).to_be_visible(timeout=20_000)

    ask(page, "What activity is the person performing?")
    expect(page.locator("#chat")).to_contain_text("confidence:", timeout=30_000)
    chat = page.locator("#chat").inner_text()
    assert re.search(r"This trial shows (walking|running)\.", chat), chat  # the task's sentence, not "Walking."
    expect(page.locator("#question textarea")).to_have_value("")

    bad = tmp_path / "broken.mot"
    bad.write_bytes(bytes(range(256)) * 8)
    page.locator("#upload input[type=file]").set_input_files(str(bad))
    expect(page.locator("#status")).to_contain_text("Could not use this upload", timeout=20_000)
    expect(page.locator("#status")).to_contain_text("broken.mot: binary file")
    expect(page.locator("#status")).to_contain_text("trial t001 is no longer selected")
    status = page.locator("#status").inner_text()
    assert str(tmp_path) not in status and "/tmp" not in status  # no server temporary path
    # nothing on the page is about the previous trial any more: no conversation, metadata, figure or file name
    expect(page.locator("#chat")).not_to_contain_text("confidence:")
    expect(page.locator("#metadata")).not_to_contain_text("running")
    expect(page.locator("#stick-figure svg.stick-figure")).to_have_count(0)
    expect(page.locator("#upload")).not_to_contain_text("broken.mot")
    expect(page.locator("#trial input")).to_have_value("")

    ask(page, "What is the cadence?")  # no answer about a motion the user did not mean
    expect(page.locator("#status")).to_contain_text("no motion selected", timeout=30_000)
    expect(page.locator("#chat")).not_to_contain_text("task: cadence")

    choose_trial(page, "t001 · train")  # and the server still answers
    expect(page.locator("#status")).to_contain_text("Selected trial t001", timeout=20_000)
    ask(page, "What is the cadence?")
    expect(page.locator("#chat")).to_contain_text("task: cadence", timeout=30_000)
    ask(page, "What is the weather today?")
    expect(page.locator("#chat")).to_contain_text("I can only answer questions about this recording", timeout=30_000)


def in_view(page, selector: str) -> bool:
    """Whether the element's top 100 px (or all of it, if shorter) are inside the window without scrolling."""
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    return box is not None and box["y"] >= 0 and box["y"] + min(box["height"], 100) <= size["height"]


def trial_text_room(page) -> tuple[float, float]:
    """(width of the Trial dropdown's text, px to spare between its end and the arrow; negative when they overlap)."""
    return page.locator("#trial").evaluate("""trial => {
        const input = trial.querySelector("input"), arrow = trial.querySelector(".icon-wrap");
        const box = input.getBoundingClientRect(), pad = parseFloat(getComputedStyle(input).paddingRight);
        const textEnd = box.left + input.clientWidth - pad;
        return [input.clientWidth - pad, arrow.getBoundingClientRect().left - textEnd];
    }""")


def test_browser_layout_at_1400_and_900_px(browser_page, app_url, tmp_path):
    """The conversation is in view without scrolling, the trial details are folded away, the trial's label is
    readable, the curves are wide enough to read on a narrow window, the stick figure names its colours, a suggested
    question asks itself, and an upload takes the old trial out of the picker."""
    page = browser_page
    expect = pytest.importorskip("playwright.sync_api").expect
    from biomechgpt.motion_io import save_motion
    from test_chat import walking_motion

    for width in (1400, 900):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(app_url, wait_until="domcontentloaded")
        page.locator("#trial input").wait_for(timeout=30_000)
        choose_trial(page, "t001 · train")
        expect(page.locator("#status")).to_contain_text("Selected trial t001", timeout=20_000)
        expect(page.locator("#stick-figure svg.stick-figure")).to_have_count(1)
        page.evaluate("window.scrollTo(0, 0)")
        assert in_view(page, "#chat") and in_view(page, "#question") and in_view(page, "#ask"), width
        # room for a label like "P0001_T04 · train · four square step test · incomplete sci" (about 320 px), and the
        # arrow never over the text (at 900 px the text had 240 px and ran under the arrow)
        room, to_arrow = trial_text_room(page)
        assert room >= 320 and to_arrow >= 0, (width, room, to_arrow)
        expect(page.locator("#metadata")).to_be_hidden()  # in the folded "Trial details"
        page.locator("#details").get_by_text("Trial details").click()
        expect(page.locator("#metadata")).to_contain_text("running")
        expect(page.locator("#stick-figure")).to_contain_text("right side (red)")
        expect(page.locator("#stick-figure")).to_contain_text("left side (blue)")
        curves = page.locator("#curves")
        expect(curves.locator("img").first).to_be_visible(timeout=20_000)
        content = page.get_by_role("main").bounding_box()["width"]  # the page's column, less Gradio's margins
        assert curves.bounding_box()["width"] >= (0.6 if width == 1400 else 0.9) * content, (curves.bounding_box(),
                                                                                               content)
        if width == 900:  # the curves take the whole width under the stick figure
            stick = page.locator("#stick-figure").bounding_box()
            assert curves.bounding_box()["y"] >= stick["y"] + stick["height"] - 1

        page.locator("#suggestions").get_by_text("What activity").first.click()
        expect(page.locator("#chat")).to_contain_text("task: activity", timeout=30_000)
        expect(page.locator("#chat")).to_contain_text("What activity", timeout=30_000)

    path = save_motion(walking_motion(seconds=6.0, seed=4), tmp_path / "my_walk.mot")
    page.locator("#upload input[type=file]").set_input_files(str(path))
    expect(page.locator("#status")).to_contain_text("Loaded upload my_walk.mot", timeout=20_000)
    expect(page.locator("#trial input")).to_have_value("")  # the old trial is no longer shown as selected
    expect(page.locator("#status")).not_to_contain_text("upload:")
