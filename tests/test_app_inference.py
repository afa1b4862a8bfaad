"""The functions behind each tab, called directly (no server): outputs, seeds, thread safety and bad input."""

import threading

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from app_helpers import FAST, tiny_service
from unclip_diffusers import UnCLIPPipeline
from unclip_diffusers.app import UnCLIPService
from unclip_diffusers.configs import build_components
from unclip_diffusers.app.inference import pipeline_defaults
from unclip_diffusers.app.schedulers import SCHEDULERS


@pytest.fixture(scope="module")
def service():
    return tiny_service()


def arrays(images):
    return [np.asarray(item[0] if isinstance(item, tuple) else item) for item in images]


def same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(arrays(a), arrays(b)))


def last(generator):
    return list(generator)[-1]


def test_text_to_image_shows_base_then_upsampled_and_matches_the_pipeline(service):
    steps = list(service.text_to_image("red apple, Noto style", 3, False, 2))
    assert len(steps) == 2
    (base, seed, base_notes), (final, seed_again, notes) = steps
    assert seed == seed_again == 3
    assert [im.size for im in base] == [(16, 16)] * 2 and [im.size for im in final] == [(64, 64)] * 2
    assert "upsampling" in base_notes and "randomly initialised" in notes
    reference = service.pipe("red apple, Noto style", num_images_per_prompt=2, prior_num_inference_steps=2,
                             decoder_num_inference_steps=2, super_res_num_inference_steps=2,
                             generator=torch.Generator().manual_seed(3))
    assert same(final, reference.images) and same(base, reference.base_images)


def test_a_second_upsampler_shows_each_stage_as_it_finishes():
    torch.manual_seed(0)
    pipe = UnCLIPPipeline(**build_components("tiny", second_upsampler=True), super_res_second_strength=0.5)
    pipe.set_progress_bar_config(disable=True)
    cascade = UnCLIPService(pipe, placeholder=True)
    cascade.defaults.update(FAST)
    steps = list(cascade.text_to_image("red apple, Noto style", 3, False, 1))
    assert [[im.size for im in images] for images, _, _ in steps] == [[(16, 16)], [(64, 64)], [(128, 128)]]
    assert "Upsampled to 64×64; second upsampler running" in steps[1][2]
    reference = pipe("red apple, Noto style", prior_num_inference_steps=2, decoder_num_inference_steps=2,
                     super_res_num_inference_steps=2, super_res_second_num_inference_steps=2,
                     generator=torch.Generator().manual_seed(3))
    assert same(steps[0][0], reference.base_images)
    # the base image reaches the upsamplers through [0, 1] (as in the one-stage app); float round-off may move a
    # few pixels by one level after two stages
    difference = np.abs(arrays(steps[-1][0])[0].astype(int) - arrays(reference.images)[0].astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3


def test_seeds_reproduce_and_randomize_reports_the_seed_used(service):
    a = last(service.text_to_image("blue heart", 11, False, 1))
    b = last(service.text_to_image("blue heart", 11, False, 1))
    c = last(service.text_to_image("blue heart", 12, False, 1))
    assert same(a[0], b[0]) and not same(a[0], c[0])
    random_run = last(service.text_to_image("blue heart", 11, True, 1))
    assert 0 <= random_run[1] < 2**32
    assert same(random_run[0], last(service.text_to_image("blue heart", random_run[1], False, 1))[0])


def test_text_to_image_refuses_bad_input_with_clear_messages(service):
    with pytest.raises(gr.Error, match="prompt is empty"):
        last(service.text_to_image("   ", 0, False, 1))
    with pytest.raises(gr.Error, match="Number of images must be between 1 and 4, got 9"):
        last(service.text_to_image("cat", 0, False, 9))
    with pytest.raises(gr.Error, match="Decoder guidance scale must be between"):
        last(service.text_to_image("cat", 0, False, 1, decoder_guidance=50.0))
    with pytest.raises(gr.Error, match="Unknown scheduler 'Euler'"):
        last(service.text_to_image("cat", 0, False, 1, scheduler="Euler"))
    with pytest.raises(gr.Error, match="Seed must be between"):
        last(service.text_to_image("cat", -5, False, 1))


LETTERS = "abcdefghijklmnopqrstuvwxyz"
LONG = " ".join(LETTERS * 3)  # 78 one-letter tokens; the tiny text encoder reads 75 (77 positions, start and end)


def test_prompts_longer_than_the_model_reads_are_cut_with_a_note_saying_where(service):
    with pytest.warns(UserWarning, match="75 tokens"):
        images, _, notes = last(service.text_to_image(LONG, 0, False, 1))
    assert ('The prompt is longer than the 75 tokens the model reads: it was cut after "…t u v w"; '
            'ignored: "x y z".') in notes and len(images) == 1
    assert "cut" not in last(service.text_to_image(LONG[:-6], 0, False, 1))[2]  # exactly 75 tokens: all read
    _, _, notes = last(service.text_diff("Prompt", "a b", None, "", LONG + " and more words here", 0.5, 1, 0, False))
    assert 'The target description is longer than the 75 tokens' in notes
    assert 'ignored: "x y z and more words here".' in notes
    _, _, notes = last(service.text_diff("Prompt", LONG, None, "", "cat", 0.5, 1, 0, False))
    assert notes.count("longer than the 75 tokens") == 1  # the source prompt, not again as its own description
    _, _, _, notes = last(service.interpolate("Prompt", "cat", None, "Prompt", LONG + " " + LONG, None, 3, 0, False))
    assert 'The end prompt is longer than the 75 tokens' in notes and 'ignored: "x y z a b c d e …"' in notes
    assert "start prompt" not in notes


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_every_scheduler_runs_without_touching_the_shared_pipeline(service, scheduler):
    shared = {k: getattr(service.pipe, k) for k in ("prior_scheduler", "decoder_scheduler", "super_res_scheduler")}
    configs = {k: dict(v.config) for k, v in shared.items()}
    images, _, _ = last(service.text_to_image("cat", 0, False, 1, scheduler=scheduler))
    assert images[0].size == (64, 64) and np.isfinite(np.asarray(images[0], dtype=float)).all()
    for key, scheduler_object in shared.items():
        assert getattr(service.pipe, key) is scheduler_object and dict(scheduler_object.config) == configs[key]


def test_concurrent_requests_give_the_same_images_as_sequential_ones(service):
    jobs = [("grinning face", 1, "DDIM"), ("red apple", 2, "UniPC"), ("blue heart", 3, "DPM-Solver++ 2M")]
    expected = [last(service.text_to_image(p, s, False, 1, scheduler=k))[0] for p, s, k in jobs]
    results, barrier = [None] * len(jobs), threading.Barrier(len(jobs))

    def run(i, prompt, seed, scheduler):
        barrier.wait()  # start together, so the requests' sampling loops interleave
        results[i] = last(service.text_to_image(prompt, seed, False, 1, scheduler=scheduler))[0]

    threads = [threading.Thread(target=run, args=(i, *job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for got, want in zip(results, expected):
        assert same(got, want)


def test_variations_sanitise_uploads(service, tmp_path):
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (300, 200), (255, 0, 0, 100)).save(rgba)
    steps = list(service.variations(str(rgba), 4, False, 2))
    (base, _, _), (final, seed, notes) = steps
    assert [im.size for im in base] == [(16, 16)] * 2 and [im.size for im in final] == [(64, 64)] * 2
    assert "transparency was flattened" in notes
    flattened = Image.alpha_composite(Image.new("RGBA", (300, 200), "white"), Image.open(rgba)).convert("RGB")
    reference = service.pipe.image_variation(flattened, num_images_per_prompt=2, decoder_num_inference_steps=2,
                                             super_res_num_inference_steps=2, generator=torch.Generator().manual_seed(4))
    assert same(final, reference.images)

    huge = Image.new("L", (5000, 2500), 128)
    _, _, notes = last(service.variations(huge, 0, False, 1))
    assert "downscaled to 1024x512" in notes and "greyscale" in notes
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(gr.Error, match="input image: The file 'notes.txt' is not an image"):
        last(service.variations(str(text), 0, False, 1))
    with pytest.raises(gr.Error, match="No input image was given"):
        last(service.variations(None, 0, False, 1))
    _, _, notes = last(service.variations(Image.new("RGB", (1, 1), "red"), 0, False, 1))
    assert "The input image: The image is 1x1 pixels, below the 32x32 the image encoder reads" in notes


@pytest.mark.parametrize("start, end", [
    (("Prompt", "grinning face", None), ("Prompt", "red apple", None)),
    (("Image", None, Image.new("RGB", (32, 32), "red")), ("Image", None, Image.new("CMYK", (40, 40), (0, 255, 0, 0)))),
    (("Prompt", "grinning face", None), ("Image", None, Image.new("RGB", (32, 32), "blue"))),
])
def test_interpolation_between_prompts_and_images(service, start, end):
    frames, gif, seed, notes = last(service.interpolate(*start, *end, 4, 5, False))
    assert [caption for _, caption in frames] == ["0.00", "0.33", "0.67", "1.00"]
    assert all(image.size == (64, 64) for image, _ in frames)
    with Image.open(gif) as animation:
        assert animation.format == "GIF" and animation.info["loop"] == 0
    again = last(service.interpolate(*start, *end, 4, 5, False))
    assert same(frames, again[0]) and seed == 5


def test_interpolation_refuses_missing_endpoints(service):
    with pytest.raises(gr.Error, match="No start image was given"):
        last(service.interpolate("Image", "", None, "Prompt", "cat", None, 3, 0, False))
    with pytest.raises(gr.Error, match="end prompt is empty"):
        last(service.interpolate("Prompt", "cat", None, "Prompt", "", None, 3, 0, False))
    with pytest.raises(gr.Error, match="start must be one of"):
        last(service.interpolate("Video", "cat", None, "Prompt", "dog", None, 3, 0, False))
    with pytest.raises(gr.Error, match="Number of frames must be between 3 and 16"):
        last(service.interpolate("Prompt", "cat", None, "Prompt", "dog", None, 40, 0, False))


def test_text_diff_from_a_prompt_and_from_an_image(service):
    frames, seed, _ = last(service.text_diff("Prompt", "red apple", None, "", "green apple", 0.6, 3, 7, False))
    assert [caption for _, caption in frames] == ["amount 0.20", "amount 0.40", "amount 0.60"]
    reference = service.pipe.text_diff("red apple", "red apple", "green apple", [0.2, 0.4, 0.6],
                                       prior_num_inference_steps=2, decoder_num_inference_steps=2,
                                       super_res_num_inference_steps=2, generator=torch.Generator().manual_seed(7))
    assert same(frames, reference.images)
    frames, _, _ = last(service.text_diff("Image", None, Image.new("RGB", (20, 20), "red"), "red square",
                                          "green square", 0.5, 1, 0, False))
    assert [caption for _, caption in frames] == ["amount 0.50"]
    with pytest.raises(gr.Error, match="description of the source is empty"):
        last(service.text_diff("Image", None, Image.new("RGB", (20, 20)), "", "green", 0.5, 1, 0, False))
    with pytest.raises(gr.Error, match="Amount must be between 0 and 1, got 1.5"):
        last(service.text_diff("Prompt", "cat", None, "", "dog", 1.5, 1, 0, False))


def test_defaults_follow_the_pipeline_signature(service):
    defaults = pipeline_defaults(service.pipe)
    assert set(defaults) == {"prior_steps", "decoder_steps", "super_res_steps", "prior_guidance", "decoder_guidance"}
    import inspect

    parameters = inspect.signature(type(service.pipe).__call__).parameters
    assert defaults["decoder_steps"] == parameters["decoder_num_inference_steps"].default
    assert parameters["prior_guidance_scale"].default is None  # None: the checkpoint's saved value
    assert defaults["prior_guidance"] == service.pipe.config.prior_guidance_scale


class RecordingProgress:
    """Stands in for `gr.Progress` and records what the request reported."""

    def __init__(self):
        self.calls = []

    def __call__(self, progress, desc=None, total=None, unit="steps"):
        self.calls.append((progress, desc))


def test_each_stage_reports_its_own_progress(service):
    progress = RecordingProgress()
    last(service.text_to_image("cat", 0, False, 1, prior_steps=3, decoder_steps=2, super_res_steps=2,
                               progress=progress))
    finished = {desc: value for value, desc in progress.calls if isinstance(value, tuple)}
    assert finished == {"Prior: text → CLIP image embedding": (3, 3), "Decoder: embedding → base image": (2, 2),
                        "Upsampler: base → full resolution": (2, 2)}
    order = [desc for _, desc in progress.calls]
    assert order.index("Decoder: embedding → base image") < order.index("Upsampler: base → full resolution")


def test_upsampler_progress_counts_the_steps_its_strength_runs():
    torch.manual_seed(0)
    pipe = UnCLIPPipeline(**build_components("tiny", second_upsampler=True), super_res_strength=0.3,
                          super_res_second_strength=0.1)
    pipe.set_progress_bar_config(disable=True)
    cascade = UnCLIPService(pipe, placeholder=True)
    progress = RecordingProgress()
    last(cascade.text_to_image("cat", 0, False, 1, prior_steps=2, decoder_steps=2, super_res_steps=10,
                               progress=progress))
    upsampler_calls = [value for value, desc in progress.calls if "psampler" in desc and isinstance(value, tuple)]
    # of 10 scheduled steps strength 0.3 runs 3 and 0.1 runs 1: the bars fill to exactly that, not 3 of 10
    assert upsampler_calls == [(1, 3), (2, 3), (3, 3), (1, 1)]


def test_pipeline_refusals_reach_the_user_as_their_own_sentence(service, monkeypatch):
    def no_encoder(image):
        raise ValueError("This pipeline has no image_encoder/feature_extractor.")

    monkeypatch.setattr(service.pipe, "encode_image", no_encoder)
    with pytest.raises(gr.Error) as refused:
        last(service.variations(Image.new("RGB", (8, 8)), 0, False, 1))
    assert refused.value.message == "This pipeline has no image_encoder/feature_extractor."
