"""The assembled page, built without a server: endpoints, queue, tabs, examples, banner and cross-tab buttons."""

import gradio as gr
import pytest

from app_helpers import tiny_service
from unclip_diffusers.app import build_demo, launch_kwargs
from unclip_diffusers.app.widgets import pick_image

ENDPOINTS = {"text_to_image", "variations", "interpolate", "text_diff", "edit", "mix"}


@pytest.fixture(scope="module")
def service():
    return tiny_service()


@pytest.fixture(scope="module")
def demo(service):
    return build_demo(service, "random tiny model", concurrency_limit=2, queue_size=5)


def _fns(demo):
    return list(demo.fns.values()) if isinstance(demo.fns, dict) else list(demo.fns)


def test_every_tab_is_a_named_public_endpoint_sharing_one_concurrency_limit(demo):
    public = {fn.api_name: fn for fn in _fns(demo) if fn.api_visibility == "public"}
    assert set(public) == ENDPOINTS  # helpers (send buttons, gallery selection) stay private
    assert {fn.concurrency_id for fn in public.values()} == {"unclip"}
    assert {fn.concurrency_limit for fn in public.values()} == {2}
    assert demo._queue.max_size == 5 and demo._queue.default_concurrency_limit == 2


def test_page_has_six_tabs_examples_and_the_placeholder_banner(demo):
    config = demo.get_config_file()
    by_type = {}
    for component in config["components"]:
        by_type.setdefault(component["type"], []).append(component["props"])
    assert [t["label"] for t in by_type["tabitem"]] == ["Text to image", "Variations", "Interpolation", "Text diff",
                                                       "Edit", "Mix"]
    assert len(by_type["dataset"]) == 6  # one gr.Examples per tab
    banner = [m for m in by_type["markdown"] if m.get("elem_id") == "placeholder-banner"]
    assert banner and "randomly initialised tiny model" in banner[0]["value"]
    assert len(by_type["accordion"]) == 6 and all(a["label"] == "Advanced" for a in by_type["accordion"])
    assert len(by_type["gallery"]) == 6 and all("download" in g["buttons"] for g in by_type["gallery"])


def test_sliders_default_to_the_pipeline_settings(service, demo):
    sliders = {c["props"].get("elem_id"): c["props"] for c in demo.get_config_file()["components"]
               if c["type"] == "slider"}
    assert sliders["t2i-decoder_steps"]["value"] == service.defaults["decoder_steps"]
    assert sliders["t2i-prior_guidance"]["value"] == service.defaults["prior_guidance"]
    assert (sliders["t2i-num-images"]["minimum"], sliders["t2i-num-images"]["maximum"]) == (1, 4)


def test_trained_weights_have_no_banner(service):
    service.placeholder = False
    try:
        demo = build_demo(service, "checkpoints/unclip-emoji")
    finally:
        service.placeholder = True
    ids = [c["props"].get("elem_id") for c in demo.get_config_file()["components"]]
    assert "placeholder-banner" not in ids


def test_bad_limits_are_refused(service):
    with pytest.raises(ValueError, match="concurrency_limit must be at least 1, got 0"):
        build_demo(service, concurrency_limit=0)
    with pytest.raises(ValueError, match="queue_size"):
        build_demo(service, queue_size=0)


def test_pick_image_sends_the_selected_or_first_result():
    value = [("/tmp/a.png", None), ("/tmp/b.png", "0.50")]
    assert pick_image(value, 1) == "/tmp/b.png"
    assert pick_image(value, None) == "/tmp/a.png" and pick_image(value, 7) == "/tmp/a.png"
    with pytest.raises(gr.Error, match="generate images first"):
        pick_image([], 0)


def test_launch_settings_need_no_network():
    kwargs = launch_kwargs()
    assert kwargs["ssr_mode"] is False
    theme = kwargs["theme"]
    fonts = list(theme._font) + list(theme._font_mono)
    assert not any(isinstance(f, gr.themes.GoogleFont) for f in fonts)


def _props(demo, elem_id: str) -> dict:
    return next(c["props"] for c in demo.get_config_file()["components"] if c["props"].get("elem_id") == elem_id)


def test_prompt_box_states_the_token_limit_of_the_loaded_model(service, demo):
    assert "75 tokens" in _props(demo, "t2i-prompt")["info"]  # the tiny text encoder: 77 positions, start and end
    tokenizer = service.pipe.tokenizer
    previous, tokenizer.model_max_length = tokenizer.model_max_length, 12
    try:
        shorter = build_demo(service)
    finally:
        tokenizer.model_max_length = previous
    info = _props(shorter, "t2i-prompt")["info"]
    assert "10 tokens" in info and "400" not in info and "notes say where" in info


def _page_event(demo, button_id: str):
    """The event the page runs when the button with `button_id` is clicked."""
    button = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == button_id)
    return next(fn for fn in _fns(demo) if (button._id, "click") in fn.targets)


@pytest.mark.parametrize("button_id, arguments", [
    ("t2i-generate", ("   ", 7, False, 1, 2, 2, 2, 4.0, 8.0, "DDIM")),
    ("var-generate", (None, 7, False, 1, 2, 2, 8.0, "DDIM")),
    ("interp-generate", ("Prompt", "cat", None, "Image", "", None, 3, 7, False, 2, 2, 2, 4.0, 8.0, "DDIM", False)),
    ("diff-generate", ("Prompt", "cat", None, "", "", 0.5, 2, 7, False, 2, 2, 2, 4.0, 8.0, "DDIM", False)),
    ("edit-generate", (None, None, "", 7, False, 1, 2, 2, 2, 4.0, 8.0, "DDIM", 0)),
    ("mix-generate", ("Prompt", "", None, 0.5, "Image", "", None, 0.5, "Prompt", " ", None, 0.5, "Prompt", "", None,
                      0.5, 1, 7, False, 2, 2, 2, 4.0, 8.0, "DDIM")),
])
def test_a_refused_request_keeps_the_results_and_seed_on_the_page_and_says_why(demo, button_id, arguments):
    event = _page_event(demo, button_id)
    with pytest.warns(UserWarning, match="empty|No .* was given|Nothing to mix"):  # it also pops up (gr.Warning)
        updates = list(event.fn(*arguments))
    *kept, notes = updates[-1]
    assert kept and all(update == gr.skip() for update in kept)  # the gallery, the GIF and the seed box stay
    assert notes.startswith("**Not generated:** ") and any(w in notes for w in ("empty", "was given", "Nothing to"))


def test_over_the_api_a_given_seed_wins_while_the_page_box_starts_ticked(demo):
    endpoints = demo.get_api_info()["named_endpoints"]
    for name in ENDPOINTS:
        parameters = {p["parameter_name"]: p for p in endpoints[f"/{name}"]["parameters"]}
        assert parameters["randomize_seed"]["parameter_default"] is False, name
    ticked = [c["props"]["value"] for c in demo.get_config_file()["components"]
              if c["type"] == "checkbox" and c["props"].get("label") == "Randomize seed" and c["props"]["visible"]]
    assert ticked == [True] * 6


def test_image_arguments_are_optional_over_the_api_in_prompt_mode(demo):
    endpoints = demo.get_api_info()["named_endpoints"]
    optional = {name: {p["parameter_name"] for p in endpoints[name]["parameters"] if p["parameter_has_default"]}
                for name in ("/interpolate", "/text_diff")}
    assert {"start_image", "end_image"} <= optional["/interpolate"]
    assert {"source_image"} <= optional["/text_diff"]


def test_edit_takes_the_editor_on_the_page_and_an_image_and_a_mask_over_the_api(demo):
    parameters = demo.get_api_info()["named_endpoints"]["/edit"]["parameters"]
    names = [p["parameter_name"] for p in parameters]
    assert names[:3] == ["image", "mask", "prompt"] and names[-1] == "jumps"
    required = {p["parameter_name"] for p in parameters if not p["parameter_has_default"]}
    assert required == {"image", "mask"}  # the prompt is optional
    page = _page_event(demo, "edit-generate")
    assert [type(block).__name__ for block in page.inputs[:2]] == ["ImageEditor", "State"]


def test_every_gallery_can_send_its_result_to_the_editor(demo):
    ids = {c["props"].get("elem_id") for c in demo.get_config_file()["components"]}
    for prefix in ("t2i", "var", "interp", "diff", "edit", "mix"):
        assert {f"{prefix}-to-edit", f"{prefix}-to-variations"} <= ids, prefix
    editor = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "edit-editor")
    sent = _page_event(demo, "t2i-to-edit")
    assert editor in sent.outputs
    value, tabs = sent.fn([("/tmp/a.png", None)], None)
    assert value == "/tmp/a.png" and tabs.selected == "edit"  # becomes the editor's background
