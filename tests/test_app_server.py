"""The launched app: every endpoint through `gradio_client` and raw HTTP, and a real headless Chromium loading the page
offline. All of it starts a server, so the whole module is `slow` (CI still runs it)."""

import contextlib
import json
import os
import shutil
from pathlib import Path
from urllib.request import Request, urlopen

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from app_helpers import tiny_service
from unclip_diffusers.app import build_demo, launch_kwargs

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
DEFAULTS = [2, 2, 2, 4.0, 8.0, "DPM-Solver++ 2M"]  # steps per stage, guidance per stage, scheduler
STEPS = {"prior_steps": 2, "decoder_steps": 2, "super_res_steps": 2}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    demo = build_demo(tiny_service(), "random tiny model", concurrency_limit=1, queue_size=8)
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_kwargs())
    yield demo.local_url
    demo.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False, download_files=False)


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "input.png"
    Image.new("RGBA", (48, 40), (0, 128, 255, 200)).save(path)
    return handle_file(str(path))


def _size(item) -> tuple[int, int]:
    with Image.open(item["image"]["path"] if isinstance(item["image"], dict) else item["image"]) as image:
        return image.size


def test_only_the_six_tabs_are_named_endpoints(client):
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {
        "/text_to_image", "/variations", "/interpolate", "/text_diff", "/edit", "/mix"}


def test_text_to_image_streams_the_base_image_then_the_upsampled_one(client):
    job = client.submit("grinning face", 5, False, 2, *DEFAULTS, api_name="/text_to_image")
    images, seed, notes = job.result(timeout=120)
    assert seed == 5 and [_size(i) for i in images] == [(64, 64)] * 2 and "randomly initialised" in notes
    first = job.outputs()[0]
    assert [_size(i) for i in first[0]] == [(16, 16)] * 2 and "upsampling" in first[2]


def test_variations_interpolation_and_text_diff(client, png):
    images, seed, notes = client.predict(png, 1, False, 1, 2, 2, 8.0, "DDIM", api_name="/variations")
    assert [_size(i) for i in images] == [(64, 64)] and "transparency was flattened" in notes
    frames, gif, seed, _ = client.predict("Prompt", "red apple", None, "Image", "", png, 3, 2, False, *DEFAULTS,
                                          False, api_name="/interpolate")
    assert [f["caption"] for f in frames] == ["0.00", "0.50", "1.00"]
    with Image.open(gif["path"] if isinstance(gif, dict) else gif) as animation:
        assert animation.format == "GIF"
    images, _, _ = client.predict("Image", "", png, "blue square", "red square", 0.5, 2, 3, False, *DEFAULTS, False,
                                  api_name="/text_diff")
    assert [i["caption"] for i in images] == ["amount 0.25", "amount 0.50"]


def test_edit_takes_an_image_and_a_mask_and_mix_takes_prompts_and_images(client, tmp_path, png):
    source, mask = tmp_path / "source.png", tmp_path / "mask.png"
    Image.new("RGB", (64, 64), (0, 128, 255)).save(source)
    painted = Image.new("L", (64, 64), 0)
    painted.paste(255, (0, 0, 32, 64))
    painted.save(mask)
    images, seed, notes = client.predict(handle_file(str(source)), handle_file(str(mask)), seed=3, num_images=1,
                                         **STEPS, api_name="/edit")  # no prompt: repainted from the image itself
    assert seed == 3 and [_size(i) for i in images] == [(64, 64)] and "image's own CLIP embedding" in notes
    with Image.open(images[0]["image"]["path"]) as edited:
        assert edited.convert("RGB").getpixel((60, 30)) == (0, 128, 255)  # the unpainted half is kept
    _, _, notes = client.predict(handle_file(str(source)), handle_file(str(mask)), "red heart", jumps=1, num_images=1,
                                 **STEPS, api_name="/edit")
    assert "Repainted from the prompt" in notes
    with pytest.raises(AppError, match="Nothing is painted"):
        client.predict(handle_file(str(source)), handle_file(str(source)), **STEPS, api_name="/edit")

    images, seed, notes = client.predict(prompt_1="red apple", weight_1=1.0, kind_2="Image", image_2=png, weight_2=0.5,
                                         num_images=2, seed=4, **STEPS, api_name="/mix")
    assert seed == 4 and [_size(i) for i in images] == [(64, 64)] * 2
    assert "input 1 (prompt) 0.67, input 2 (image) 0.33" in notes
    with pytest.raises(AppError, match="Nothing to mix"):
        client.predict(prompt_1="", prompt_2=" ", **STEPS, api_name="/mix")
    with pytest.raises(AppError, match="mix weights must sum to a positive number"):
        client.predict(weight_1=0, weight_2=0, **STEPS, api_name="/mix")


def test_long_prompts_are_cut_with_a_note_saying_where(client):
    _, _, notes = client.predict("apple " * 80, 0, False, 1, *DEFAULTS, api_name="/text_to_image")
    assert ('The prompt is longer than the 75 tokens the model reads: it was cut after "…apple apple apple app"; '
            'ignored: "le apple apple apple apple apple apple apple …".') in notes  # "apple" is 2 tokens: app, le


def test_a_seed_given_by_a_client_is_used_without_saying_randomize_seed_false(client):
    _, seed, _ = client.predict("cat", seed=5, num_images=1, **STEPS, api_name="/text_to_image")
    assert seed == 5
    _, seed, _ = client.predict("cat", seed=5, randomize_seed=True, num_images=1, **STEPS, api_name="/text_to_image")
    assert seed != 5  # asking for a fresh seed still works (a 1 in 2**32 chance of drawing 5)


def test_prompt_mode_needs_no_image_arguments(client):
    frames, _, seed, _ = client.predict(start_kind="Prompt", start_prompt="cat", end_kind="Prompt", end_prompt="dog",
                                        num_frames=3, seed=4, **STEPS, api_name="/interpolate")
    assert [f["caption"] for f in frames] == ["0.00", "0.50", "1.00"] and seed == 4
    images, _, _ = client.predict(source_kind="Prompt", source_prompt="red apple", target_prompt="green apple",
                                  num_images=1, **STEPS, api_name="/text_diff")
    assert [i["caption"] for i in images] == ["amount 0.50"]


def test_unknown_scheduler_over_raw_http_is_answered_with_a_sentence_and_no_traceback(server, capfd):
    base = server.rstrip("/") + "/gradio_api/call/text_to_image"
    body = json.dumps({"data": ["cat", 0, False, 1, 2, 2, 2, 4.0, 8.0, "Euler"]}).encode()
    with urlopen(Request(base, data=body, headers={"Content-Type": "application/json"}), timeout=60) as response:
        event_id = json.load(response)["event_id"]
    with urlopen(f"{base}/{event_id}", timeout=60) as response:
        stream = response.read().decode()
    assert "event: error" in stream and "Scheduler must be one of: DPM-Solver++ 2M" in stream and "Euler" in stream
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("args, message", [
    (("", 0, False, 1, *DEFAULTS), "prompt is empty"),
    (("cat", 0, False, 9, *DEFAULTS), "Number of images must be between 1 and 4, got 9"),
    (("cat", 0, False, 1, 500, 2, 2, 4.0, 8.0, "DDIM"), "Prior steps must be between 1 and 100, got 500"),
    (("cat", 0, False, 1, 2, 2, 2, "lots", 8.0, "DDIM"), "Prior guidance scale must be a number"),
    (("cat", -3, False, 1, *DEFAULTS), "Seed must be between 0 and 4294967295"),
    (("cat", 0, False, 2.5, *DEFAULTS), "Number of images must be a whole number, got 2.5"),
    (("cat", 1.5, False, 1, *DEFAULTS), "Seed must be a whole number, got 1.5"),
])
def test_bad_api_input_gets_a_sentence_not_a_traceback(client, args, message):
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/text_to_image")


def test_non_image_uploads_are_refused(client, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("definitely not a picture")
    with pytest.raises(AppError, match="is not an image"):
        client.predict(handle_file(str(text)), 0, False, 1, 2, 2, 8.0, "DDIM", api_name="/variations")


@contextlib.contextmanager
def chromium_page(server: str):
    """A headless Chromium page on the app, offline: requests outside the server are refused and listed."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    external: list[str] = []

    def only_local(route):
        url = route.request.url
        if url.startswith(server.rstrip("/")) or url.startswith(("data:", "blob:")):
            route.continue_()
        else:  # the page must work with no network: record and refuse anything else
            external.append(url)
            route.abort()

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.route("**/*", only_local)
            page.goto(server, wait_until="load", timeout=60_000)
            page.wait_for_selector("#placeholder-banner", timeout=60_000)
            yield page, external
        finally:
            browser.close()


@pytest.mark.browser
def test_browser_renders_offline_generates_and_sends_to_variations(server, tmp_path):
    with chromium_page(server) as (page, external):
        page.fill("#t2i-prompt textarea", "grinning face, Noto style")
        page.click("#t2i-generate")
        notes_final = """() => {
            const imgs = Array.from(document.querySelectorAll('#t2i-gallery img'));
            const notes = document.querySelector('#t2i-notes').innerText;
            return imgs.length > 0 && imgs.every(img => img.complete && img.naturalWidth > 0)
                && notes.includes('randomly initialised') && !notes.includes('upsampling');
        }"""  # every final (upsampled) image loaded, not only the first: notes no longer say "upsampling"
        page.wait_for_function(notes_final, timeout=90_000)
        widths = page.eval_on_selector_all("#t2i-gallery img", "imgs => imgs.map(img => img.naturalWidth)")
        screenshot = tmp_path / "app.png"
        page.screenshot(path=str(screenshot), full_page=True)
        if os.environ.get("APP_SCREENSHOT_DIR"):  # keep a copy to look at
            Path(os.environ["APP_SCREENSHOT_DIR"]).mkdir(parents=True, exist_ok=True)
            shutil.copy(screenshot, Path(os.environ["APP_SCREENSHOT_DIR"]) / "app.png")

        first_seed = page.input_value("#t2i-seed input")
        page.click("#t2i-generate")  # "Randomize seed" is ticked on the page: a new seed each click
        page.wait_for_function(f"() => document.querySelector('#t2i-seed input').value !== '{first_seed}'",
                               timeout=90_000)
        page.wait_for_function(notes_final, timeout=90_000)
        seed = page.input_value("#t2i-seed input")
        page.fill("#t2i-prompt textarea", "   ")
        page.click("#t2i-generate")  # refused: the results and the seed stay, the notes say why
        page.wait_for_function("() => document.querySelector('#t2i-notes').innerText.includes('Not generated')",
                               timeout=30_000)
        after_error = {"images": page.eval_on_selector_all("#t2i-gallery img", "imgs => imgs.length"),
                       "seed": page.input_value("#t2i-seed input"),
                       "overlays": page.inner_text("#t2i-gallery") + page.inner_text("#t2i-seed")}

        page.click("#t2i-to-variations")
        page.wait_for_selector("#var-image img", timeout=30_000)
        variations_visible = page.is_visible("#var-generate")
    assert widths and set(widths) == {64}  # the upsampled images, not the 16 px base ones
    assert variations_visible
    assert after_error["images"] == len(widths) and after_error["seed"] == seed != first_seed
    assert "Error" not in after_error["overlays"]  # no error badge covering the kept results
    assert external == []
    with Image.open(screenshot) as shot:
        assert shot.size[0] == 1280


PIXEL = """([selector, x, y]) => {
    const img = document.querySelector(selector);
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const context = canvas.getContext('2d');
    context.drawImage(img, 0, 0);
    return Array.from(context.getImageData(x, y, 1, 1).data.slice(0, 3));
}"""  # the RGB of one pixel of a loaded image (same origin, so the canvas may read it)


@pytest.mark.browser
def test_browser_paints_a_mask_in_the_edit_tab_and_gets_an_edit_that_keeps_the_rest(server, tmp_path):
    source = tmp_path / "blue.png"
    Image.new("RGB", (64, 64), (0, 128, 255)).save(source)
    with chromium_page(server) as (page, external):
        page.get_by_role("tab", name="Edit").click()
        page.wait_for_selector("#edit-editor canvas", timeout=30_000)
        page.set_input_files("#edit-editor input[type=file]", str(source))
        page.wait_for_function("() => !document.querySelector('#edit-editor').innerText.includes('Upload an image')",
                               timeout=30_000)  # the image is on the canvas (painting earlier paints a blank one)
        page.click("#edit-editor button[aria-label='Brush']")
        box = page.locator("#edit-editor canvas").first.bounding_box()
        side = 0.8 * min(box["width"], box["height"])  # the image sits centred in the canvas
        x, y = box["x"] + box["width"] / 2 - 0.3 * side, box["y"] + box["height"] / 2
        page.mouse.move(x, y - 0.35 * side)
        page.mouse.down()
        for step in range(1, 11):  # a vertical stroke down the image's left part
            page.mouse.move(x, y - 0.35 * side + 0.07 * side * step)
        page.mouse.up()
        page.click("#edit-generate")
        page.wait_for_function("""() => {
            const img = document.querySelector('#edit-gallery img');
            return img && img.complete && img.naturalWidth > 0;
        }""", timeout=90_000)
        notes = page.inner_text("#edit-notes")
        width = page.eval_on_selector("#edit-gallery img", "img => img.naturalWidth")
        kept = page.evaluate(PIXEL, ["#edit-gallery img", 60, 32])
        painted = page.evaluate(PIXEL, ["#edit-gallery img", 12, 32])
        if os.environ.get("APP_SCREENSHOT_DIR"):  # keep a copy to look at
            Path(os.environ["APP_SCREENSHOT_DIR"]).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(os.environ["APP_SCREENSHOT_DIR"]) / "edit.png"), full_page=True)
    assert "Repainted from the image's own CLIP embedding" in notes and "Not generated" not in notes
    assert width == 64
    assert all(abs(a - b) <= 2 for a, b in zip(kept, (0, 128, 255)))  # outside the stroke: the source
    assert max(abs(a - b) for a, b in zip(painted, (0, 128, 255))) > 10  # under it: repainted (by a random model)
    assert external == []
