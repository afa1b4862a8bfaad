"""Text-to-image and the stage methods of `UnCLIPPipeline`, on tiny seeded components with 2 steps per stage."""

import copy
import inspect
import logging
import re
import threading

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    HeunDiscreteScheduler,
    KDPM2DiscreteScheduler,
    UnCLIPScheduler,
    UniPCMultistepScheduler,
)

from unclip_diffusers import PromptEncodings, PromptFit, UnCLIPPipeline, UnCLIPPipelineOutput
from unclip_diffusers.configs import build_components
from unclip_diffusers.pipelines.sampling import strength_start_index

FAST = dict(prior_num_inference_steps=2, decoder_num_inference_steps=2, super_res_num_inference_steps=2,
            prior_guidance_scale=2.0, decoder_guidance_scale=2.0)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)




def test_output_shapes_and_types_for_every_output_type(pipe):
    for output_type, prompt, per_prompt in (("np", ["a red heart", "a cat"], 1), ("pt", "a cat", 2), ("pil", "a", 2)):
        out = pipe(prompt, num_images_per_prompt=per_prompt, generator=_generator(), output_type=output_type, **FAST)
        assert isinstance(out, UnCLIPPipelineOutput)
        assert out.image_embeds.shape == (2, 32) and out.image_embeds.dtype == torch.float32
        torch.testing.assert_close(out.image_embeds.norm(dim=-1), torch.ones(2))  # normalised between stages
        if output_type == "np":
            assert out.images.shape == (2, 64, 64, 3) and out.images.dtype == np.float32
            assert out.base_images.shape == (2, 16, 16, 3)
            assert out.images.min() >= 0 and out.images.max() <= 1
        elif output_type == "pt":
            assert out.images.shape == (2, 3, 64, 64) and out.base_images.shape == (2, 3, 16, 16)
            assert out.images.dtype == torch.float32
        else:
            assert len(out.images) == 2 and len(out.base_images) == 2
            assert out.images[0].size == (64, 64) and out.base_images[0].size == (16, 16)
            assert out.images[0].mode == "RGB"
    assert pipe.output_size == (64, 64) and pipe.base_size == (16, 16)  # read from the component configs


def test_expected_values_and_return_dict_false(pipe):
    # Configured like the release (`super_res_strength=0.3`): the upsampler refines the noised bicubic upsample, so
    # most pixels lie inside (0, 1). From pure noise these random tiny weights put 97% of the pixels at the clamp, and
    # a slice of 0s and 1s would pin little.
    release_like = UnCLIPPipeline(**pipe.components, super_res_strength=0.3)
    release_like.set_progress_bar_config(disable=True)
    out = release_like("a red heart", generator=_generator(), output_type="np", **FAST)
    # Recorded from this implementation (torch 2.13 CPU); guards against silent changes to the sampling maths.
    expected_embeds = torch.tensor([0.3492, 0.0348, 0.1237, 0.1859, -0.0527, 0.3491])
    torch.testing.assert_close(out.image_embeds[0, :6], expected_embeds, atol=1e-3, rtol=0)
    expected_slice = np.array([0.7721, 0.1977, 0.5608, 0.7927, 0.3772, 0.1137, 0.0836, 0.4908, 0.1011])
    np.testing.assert_allclose(out.images[0, 10:13, 44:47, 1].flatten(), expected_slice, atol=1e-3)
    assert float(out.images.mean()) == pytest.approx(0.4901, abs=1e-3)
    from_noise = pipe("a red heart", generator=_generator(), output_type="np", **FAST)  # super_res_strength 1
    assert float(from_noise.images.mean()) == pytest.approx(0.4365, abs=1e-3)
    as_tuple = release_like("a red heart", generator=_generator(), output_type="np", return_dict=False, **FAST)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 3
    np.testing.assert_array_equal(as_tuple[0], out.images)
    torch.testing.assert_close(as_tuple[1], out.image_embeds)
    np.testing.assert_array_equal(as_tuple[2], out.base_images)


def test_precomputed_prompt_encodings_give_the_same_images(pipe):
    prompts = ["a red heart", "a cat"]
    from_text = pipe(prompts, num_images_per_prompt=2, generator=_generator(2), output_type="np", **FAST)
    encodings = pipe.encode_prompt(prompts)  # conditional rows only, one per caption
    from_encodings = pipe(encodings, num_images_per_prompt=2, generator=_generator(2), output_type="np", **FAST)
    np.testing.assert_array_equal(from_encodings.images, from_text.images)
    torch.testing.assert_close(from_encodings.image_embeds, from_text.image_embeds, atol=0, rtol=0)


def test_latent_output_type_returns_the_last_stages_latents(pipe):
    images = pipe("a cat", generator=_generator(1), output_type="pt", **FAST)
    latents = pipe("a cat", generator=_generator(1), output_type="latent", **FAST)
    assert latents.images.shape == (1, 3, 64, 64) and latents.base_images.shape == (1, 3, 16, 16)
    assert latents.images.min() < 0 and latents.images.abs().max() <= 1  # the upsampler's [-1, 1] output
    torch.testing.assert_close(latents.images / 2 + 0.5, images.images)
    torch.testing.assert_close(latents.base_images / 2 + 0.5, images.base_images)
    base = pipe.decode(latents.image_embeds, "a cat", num_inference_steps=2, guidance_scale=2.0,
                       generator=_generator(9), upscale=False, output_type="latent")
    assert base.shape == (1, 3, 16, 16) and base.min() < 0


@pytest.mark.parametrize("method", ["__call__", "sample_prior", "decode", "super_resolve"])
def test_generator_none_draws_from_torchs_global_rng(pipe, method):
    embeds = torch.nn.functional.normalize(torch.randn(1, 32, generator=_generator(3)), dim=-1)
    calls = {
        "__call__": lambda: pipe("a cat", output_type="pt", **FAST).images,
        "sample_prior": lambda: pipe.sample_prior("a cat", num_inference_steps=2),
        "decode": lambda: pipe.decode(embeds, num_inference_steps=2, super_res_num_inference_steps=2, output_type="pt"),
        "super_resolve": lambda: pipe.super_resolve(torch.rand(1, 3, 16, 16, generator=_generator(4)),
                                                    num_inference_steps=2, output_type="pt"),
    }
    torch.manual_seed(7)
    first = calls[method]()
    torch.manual_seed(7)
    again = calls[method]()
    other = calls[method]()  # the global RNG has moved on
    torch.testing.assert_close(first, again, atol=0, rtol=0)
    assert (first - other).abs().max() > 0.01


def test_same_seed_same_image_different_seed_different(pipe):
    a = pipe("a cat", generator=_generator(3), output_type="np", **FAST)
    b = pipe("a cat", generator=_generator(3), output_type="np", **FAST)
    c = pipe("a cat", generator=_generator(4), output_type="np", **FAST)
    np.testing.assert_array_equal(a.images, b.images)
    torch.testing.assert_close(a.image_embeds, b.image_embeds)
    assert not torch.allclose(a.image_embeds, c.image_embeds)
    assert np.abs(a.images - c.images).max() > 0.1


def test_batched_prompts_equal_one_by_one(pipe):
    prompts = ["a cat", "a smiling face with hearts"]
    batched = pipe(prompts, generator=[_generator(10), _generator(11)], output_type="np", **FAST)
    for i, prompt in enumerate(prompts):
        single = pipe(prompt, generator=_generator(10 + i), output_type="np", **FAST)
        torch.testing.assert_close(batched.image_embeds[i : i + 1], single.image_embeds, atol=1e-5, rtol=1e-4)
        # Batched matrix products round differently; random untrained networks amplify that slightly.
        np.testing.assert_allclose(batched.base_images[i : i + 1], single.base_images, atol=2e-3)
        np.testing.assert_allclose(batched.images[i : i + 1], single.images, atol=2e-3)


def test_prior_draw_two_keeps_the_candidate_closest_to_the_caption(pipe):
    latents = torch.randn(2, 32, generator=_generator(5))
    kwargs = dict(num_inference_steps=2, guidance_scale=2.0)
    candidates = torch.cat([pipe.sample_prior("a cat", latents=latents[i : i + 1], **kwargs) for i in range(2)])
    text = pipe.encode_prompt("a cat").text_embeds  # (1, D), normalised
    best = candidates[(candidates @ text.T).squeeze(1).argmax()]
    chosen = pipe.sample_prior("a cat", sample_count=2, latents=latents, **kwargs)
    torch.testing.assert_close(chosen[0], best, atol=1e-5, rtol=1e-4)
    out = pipe("a cat", prior_sample_count=2, prior_latents=latents, output_type="np", **FAST)
    torch.testing.assert_close(out.image_embeds[0], best, atol=1e-5, rtol=1e-4)


def test_stage_methods_compose_to_the_full_call(pipe):
    g = _generator(7)
    prior_latents = torch.randn(1, 32, generator=g)
    decoder_latents = torch.randn(1, 3, 16, 16, generator=g)
    super_res_latents = torch.randn(1, 3, 64, 64, generator=g)
    full = pipe("a cat", prior_latents=prior_latents, decoder_latents=decoder_latents,
                super_res_latents=super_res_latents, output_type="pt", **FAST)
    encodings = pipe.encode_prompt("a cat")
    embeds = pipe.sample_prior(encodings, num_inference_steps=2, guidance_scale=2.0, latents=prior_latents)
    base = pipe.decode(embeds, encodings, num_inference_steps=2, guidance_scale=2.0, latents=decoder_latents,
                       upscale=False, output_type="pt")
    final = pipe.super_resolve(base, num_inference_steps=2, latents=super_res_latents, output_type="pt")
    torch.testing.assert_close(embeds, full.image_embeds)
    torch.testing.assert_close(base, full.base_images)
    torch.testing.assert_close(final, full.images, atol=1e-4, rtol=0)
    both = pipe.decode(embeds, "a cat", num_inference_steps=2, guidance_scale=2.0, latents=decoder_latents,
                       super_res_num_inference_steps=2, super_res_latents=super_res_latents, output_type="pt")
    torch.testing.assert_close(both, full.images, atol=1e-4, rtol=0)
    # super_resolve also takes PIL images (e.g. what decode returned with the default output_type).
    pil_base = pipe.decode(embeds, encodings, num_inference_steps=2, guidance_scale=2.0, latents=decoder_latents,
                           upscale=False)
    assert pipe.super_resolve(pil_base, num_inference_steps=2, output_type="pt").shape == (1, 3, 64, 64)


def test_encode_prompt_shapes_guidance_order_and_normalisation(pipe):
    cond = pipe.encode_prompt(["a cat", "a dog"], num_images_per_prompt=2)
    assert isinstance(cond, PromptEncodings)
    assert cond.text_embeds.shape == (4, 32) and cond.token_encodings.shape == (4, 77, 32)
    assert cond.attention_mask.shape == (4, 77) and cond.attention_mask.dtype == torch.bool
    torch.testing.assert_close(cond.text_embeds.norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(cond.text_embeds[0], cond.text_embeds[1])  # images of one caption are consecutive
    guided = pipe.encode_prompt(["a cat", "a dog"], None, 2, True)
    empty = pipe.encode_prompt("")
    assert guided.text_embeds.shape == (8, 32)
    torch.testing.assert_close(guided.text_embeds[:4], empty.text_embeds.expand(4, -1))  # unconditional first
    torch.testing.assert_close(guided.text_embeds[4:], cond.text_embeds)
    assert int(empty.attention_mask.sum()) == 2  # start and end tokens only


def test_decode_without_prompt_uses_the_empty_caption(pipe):
    embeds = torch.nn.functional.normalize(torch.randn(2, 32, generator=_generator(2)), dim=-1)
    kwargs = dict(num_inference_steps=2, guidance_scale=2.0, upscale=False, output_type="pt")
    none = pipe.decode(embeds, None, generator=_generator(1), **kwargs)
    empty = pipe.decode(embeds, "", generator=_generator(1), **kwargs)
    caption = pipe.decode(embeds, "a cat", generator=_generator(1), **kwargs)
    torch.testing.assert_close(none, empty)
    assert not torch.allclose(none, caption)
    with pytest.raises(ValueError, match="3 captions for 2 image embeddings"):
        pipe.decode(embeds, ["a", "b", "c"], **kwargs)
    with pytest.raises(ValueError, match=r"shape \(N, 32\)"):
        pipe.decode(torch.zeros(2, 8), **kwargs)


def test_the_empty_caption_is_encoded_once_and_again_when_the_text_encoder_changes():
    from conftest import make_tiny_pipeline

    pipe = make_tiny_pipeline()
    calls = []
    forward = pipe.text_encoder.forward
    pipe.text_encoder.forward = lambda *a, **k: calls.append(1) or forward(*a, **k)
    empty = pipe.encode_prompt("")
    pipe.sample_prior("a cat", num_inference_steps=2, guidance_scale=2.0)  # caches "" under inference mode
    assert len(calls) == 3  # "", then "a cat" and the guidance's empty caption
    guided = pipe.encode_prompt("a cat", do_classifier_free_guidance=True)
    assert len(calls) == 4  # only "a cat": the empty caption came from the cache
    torch.testing.assert_close(guided.text_embeds[:1], empty.text_embeds)
    assert not guided.text_embeds.is_inference()  # it may feed a training step
    with torch.no_grad():  # new weights (training, a swapped checkpoint): encoded afresh
        next(pipe.text_encoder.parameters()).add_(0.5)
    changed = pipe.encode_prompt("a cat", do_classifier_free_guidance=True)
    assert len(calls) == 6 and not torch.allclose(changed.text_embeds[:1], empty.text_embeds)
    with torch.inference_mode():  # a pipeline loaded under inference mode has weights without version counters
        loaded = make_tiny_pipeline()
        loaded.sample_prior("a cat", num_inference_steps=2, guidance_scale=2.0)


def test_encode_image_is_normalised_and_composites_transparency(pipe):
    rgba = PIL.Image.new("RGBA", (40, 40), (0, 0, 255, 0))
    white = PIL.Image.new("RGB", (40, 40), (255, 255, 255))
    embeds = pipe.encode_image([rgba, white])
    assert embeds.shape == (2, 32)
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(embeds[0], embeds[1])  # fully transparent == white background
    with pytest.raises(TypeError, match="PIL.Image.Image"):
        pipe.encode_image(np.zeros((40, 40, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="mode 'F'"):
        pipe.encode_image(PIL.Image.new("F", (40, 40)))


@pytest.mark.parametrize("scheduler_class", [DDPMScheduler, DDIMScheduler, UniPCMultistepScheduler, UnCLIPScheduler])
def test_any_scheduler_through_from_config(pipe, scheduler_class):
    original = {name: getattr(pipe, name) for name in ("prior_scheduler", "decoder_scheduler", "super_res_scheduler")}
    try:
        for name, scheduler in original.items():
            setattr(pipe, name, scheduler_class.from_config(scheduler.config))
        a = pipe("a cat", generator=_generator(), output_type="np", **FAST)
        b = pipe("a cat", generator=_generator(), output_type="np", **FAST)
    finally:
        pipe.register_modules(**original)
    assert a.images.shape == (1, 64, 64, 3) and np.isfinite(a.images).all()
    np.testing.assert_array_equal(a.images, b.images)  # stochastic samplers draw from the generator too
    torch.testing.assert_close(a.image_embeds.norm(dim=-1), torch.ones(1))


def test_make_schedulers_turns_off_x0_clipping_for_the_prior(pipe):
    schedulers = pipe.make_schedulers(DDIMScheduler)
    assert set(schedulers) == {"prior_scheduler", "decoder_scheduler", "super_res_scheduler"}
    assert all(isinstance(s, DDIMScheduler) for s in schedulers.values())
    assert schedulers["prior_scheduler"].config.clip_sample is False
    assert schedulers["prior_scheduler"].config.prediction_type == "sample"
    assert schedulers["decoder_scheduler"].config.clip_sample is True
    assert schedulers["decoder_scheduler"].config.beta_schedule == "squaredcos_cap_v2"
    embeds = pipe.sample_prior("a cat", num_inference_steps=2, generator=_generator(),
                               scheduler=schedulers["prior_scheduler"])
    assert embeds.shape == (1, 32)


def test_pipeline_without_upsampler_returns_base_images():
    torch.manual_seed(0)
    components = build_components("tiny")
    components.update(super_res_first=None, super_res_scheduler=None)
    pipe = UnCLIPPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    out = pipe("a cat", generator=_generator(), output_type="np", **FAST)
    assert out.images.shape == (1, 16, 16, 3) and pipe.output_size == (16, 16)
    np.testing.assert_array_equal(out.images, out.base_images)
    with pytest.raises(ValueError, match="no upsampler"):
        pipe.super_resolve(out.images)
    with pytest.raises(ValueError, match="no upsampler"):
        pipe("a cat", super_res_latents=torch.zeros(1, 3, 64, 64), **FAST)


def test_schedulers_are_not_mutated_and_concurrent_calls_agree(pipe):
    before = pipe.decoder_scheduler.num_inference_steps
    reference = pipe("a cat", generator=_generator(21), output_type="np", **FAST).images
    assert pipe.decoder_scheduler.num_inference_steps == before
    results = [None, None]

    def run(i: int) -> None:
        results[i] = pipe("a cat", generator=_generator(21), output_type="np", **FAST).images

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        np.testing.assert_array_equal(result, reference)


def test_callback_sees_every_stage_and_can_replace_latents(pipe):
    seen = []

    def record(p, step, timestep, kwargs):
        seen.append((kwargs["stage"], step, tuple(kwargs["latents"].shape)))
        return {}

    pipe("a cat", generator=_generator(), output_type="np", callback_on_step_end=record, **FAST)
    assert [s[:2] for s in seen] == [("prior", 0), ("prior", 1), ("decoder", 0), ("decoder", 1),
                                     ("super_res", 0), ("super_res", 1)]
    assert seen[0][2] == (1, 32) and seen[2][2] == (1, 3, 16, 16) and seen[4][2] == (1, 3, 64, 64)

    def blank_base(p, step, timestep, kwargs):
        if kwargs["stage"] == "decoder" and step == 1:
            return {"latents": torch.zeros_like(kwargs["latents"])}
        return {}

    out = pipe("a cat", generator=_generator(), output_type="np", callback_on_step_end=blank_base, **FAST)
    np.testing.assert_allclose(out.base_images, 0.5)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(prompt=[]), ValueError, "empty list"),
        (dict(prompt=123), TypeError, "string or a list"),
        (dict(prompt=["ok", None]), TypeError, r"prompt\[1\]"),
        (dict(prior_num_inference_steps=-1), ValueError, "prior_num_inference_steps"),
        (dict(decoder_num_inference_steps=0), ValueError, "decoder_num_inference_steps"),
        (dict(super_res_num_inference_steps=2.5), ValueError, "super_res_num_inference_steps"),
        (dict(num_images_per_prompt=0), ValueError, "num_images_per_prompt"),
        (dict(prior_guidance_scale=-0.5), ValueError, "prior_guidance_scale"),
        (dict(decoder_guidance_scale=float("nan")), ValueError, "decoder_guidance_scale"),
        (dict(decoder_guidance_scale=float("inf")), ValueError, "decoder_guidance_scale"),
        (dict(prior_sample_count=0), ValueError, "prior_sample_count"),
        (dict(generator=[torch.Generator()] * 3), ValueError, "3 generators for 1 images"),
        (dict(output_type="latents"), ValueError, "output_type"),
        (dict(prompt=PromptEncodings(torch.zeros(1, 31), torch.zeros(1, 77, 32), torch.ones(1, 77, dtype=torch.bool))),
         ValueError, r"text_embeds must have shape \(B, 32\)"),
        (dict(prompt=PromptEncodings(torch.zeros(1, 32), torch.zeros(1, 77, 32), torch.ones(2, 77, dtype=torch.bool))),
         ValueError, "attention_mask"),
        (dict(prior_latents=torch.zeros(1, 31)), ValueError, "prior_latents"),
        (dict(decoder_latents=torch.zeros(1, 3, 8, 8)), ValueError, "decoder_latents"),
        (dict(super_res_latents=torch.zeros(2, 3, 64, 64)), ValueError, "super_res_latents"),
        (dict(callback_on_step_end_tensor_inputs=["noise"]), ValueError, "noise"),
    ],
)
def test_bad_inputs_raise_clear_errors(pipe, kwargs, error, message):
    arguments = dict(prompt="a cat", **FAST)
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        pipe(**arguments)


def test_long_prompt_is_truncated_to_77_tokens_with_a_warning(pipe, caplog):
    long_prompt = "a very happy cat with a red hat " * 20  # ~500 characters
    assert len(long_prompt) > 500
    with caplog.at_level(logging.WARNING):
        out = pipe(long_prompt, generator=_generator(), output_type="np", **FAST)
    assert any("truncated" in record.getMessage() for record in caplog.records)
    ids = pipe.tokenizer(long_prompt, truncation=True, max_length=77).input_ids
    truncated = pipe.tokenizer.decode(ids[1:-1])
    same = pipe(truncated, generator=_generator(), output_type="np", **FAST)
    np.testing.assert_allclose(out.images, same.images, atol=1e-5)



def test_fit_prompt_says_what_the_encoder_reads_and_what_it_cuts(pipe, caplog):
    assert pipe.max_prompt_tokens == 75  # the tiny text encoder's 77 positions less the start and end tokens
    assert pipe.fit_prompt("red apple, Noto style") == PromptFit(kept="red apple , noto style", dropped="",
                                                                 max_tokens=75)
    letters = [chr(ord("a") + i % 26) for i in range(80)]  # one token each
    fit = pipe.fit_prompt(" ".join(letters))
    assert fit == PromptFit(kept=" ".join(letters[:75]), dropped=" ".join(letters[75:]), max_tokens=75)
    with caplog.at_level(logging.WARNING):
        full = pipe(" ".join(letters), generator=_generator(), output_type="np", **FAST)
    assert any("dropped: 'x y z a b'" in record.getMessage() for record in caplog.records)
    kept = pipe(fit.kept, generator=_generator(), output_type="np", **FAST)
    np.testing.assert_allclose(full.images, kept.images, atol=1e-6)  # what `kept` says is what the model read

PUBLIC_METHODS = ["__call__", "encode_prompt", "sample_prior", "decode", "super_resolve", "image_variation",
                  "interpolate", "text_diff", "ddim_invert"]


def _documented_arguments(docstring: str) -> dict[str, str]:
    """Map each argument in a diffusers-style "Args:" section to the text of its entry (wrapped lines joined)."""
    section = docstring.split("Args:", 1)[1].split("Returns:", 1)[0]
    lines = section.splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    entries: dict[str, str] = {}
    current = None
    for line in lines:
        match = re.match(rf"^ {{{indent}}}(\w+) \(", line)
        if match:
            current = match.group(1)
            entries[current] = line.strip()
        elif current is not None and line.strip():
            entries[current] += " " + line.strip()
    return entries


@pytest.mark.parametrize("method", PUBLIC_METHODS)
def test_docstring_defaults_match_the_signature(method):
    function = getattr(UnCLIPPipeline, method)
    entries = _documented_arguments(function.__doc__)
    for name, parameter in inspect.signature(function).parameters.items():
        if name == "self":
            continue
        assert name in entries, f"{method}: {name} is undocumented"
        match = re.search(r"defaults to (.+?)\):", entries[name])
        if parameter.default is inspect.Parameter.empty:
            assert match is None, f"{method}: {name} is required but documented with a default"
            continue
        assert match, f"{method}: {name} has a default but the docstring does not state it"
        text = match.group(1).strip("`")
        documented = None if text == "None" else eval(text)  # literal defaults: numbers, strings, tuples, booleans
        assert documented == parameter.default, f"{method}: {name}: docstring {text}, signature {parameter.default!r}"


def test_half_precision_pipeline_runs():
    torch.manual_seed(0)
    pipe = UnCLIPPipeline(**build_components("tiny")).to(torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    out = pipe("a cat", generator=_generator(), output_type="pt", **FAST)
    assert out.images.shape == (1, 3, 64, 64) and out.images.dtype == torch.float32  # outputs are always float32
    assert torch.isfinite(out.images).all() and out.image_embeds.dtype == torch.bfloat16


def _super_res_timesteps(pipe, **kwargs):
    seen = []

    def record(pipeline, step, timestep, callback_kwargs):
        seen.append(int(timestep))
        return {}

    images = torch.rand(1, 3, 16, 16, generator=_generator(7))
    out = pipe.super_resolve(images, generator=_generator(), output_type="pt", callback_on_step_end=record, **kwargs)
    return seen, out


def test_super_res_strength_runs_the_tail_of_the_schedule_from_the_noised_upsample(pipe):
    full, full_out = _super_res_timesteps(pipe, num_inference_steps=10)
    half, half_out = _super_res_timesteps(pipe, num_inference_steps=10, strength=0.5)
    assert len(full) == 10 and half == full[5:]  # the last 5 of the same 10-step schedule
    assert full[0] < 999  # the cosine schedule's last timesteps are skipped (lambda_min_clipped)
    assert not torch.allclose(full_out, half_out)
    assert _super_res_timesteps(pipe, num_inference_steps=10, strength=0.01)[0] == full[-1:]  # at least one step


@pytest.mark.parametrize("scheduler_class", [HeunDiscreteScheduler, KDPM2DiscreteScheduler])
def test_super_res_strength_with_a_second_order_scheduler_runs_the_same_share_of_steps(pipe, scheduler_class):
    """`timesteps` of an order-2 scheduler holds 2N - 1 entries: the start index counts the order once."""
    scheduler = scheduler_class.from_config(pipe.super_res_scheduler.config)
    full, _ = _super_res_timesteps(pipe, num_inference_steps=10, scheduler=scheduler)
    tail, out = _super_res_timesteps(pipe, num_inference_steps=10, strength=0.3, scheduler=scheduler)
    assert len(full) == 19 and tail == full[14:]  # the last 3 of 10 steps: two model calls each but the last
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("order, start", [(1, 7), (2, 14)])
def test_strength_start_index_counts_the_scheduler_order_once(order, start):
    assert strength_start_index(10, 0.3, order) == start
    assert strength_start_index(10, 1.0, order) == 0
    assert strength_start_index(10, 0.01, order) == 9 * order  # at least one step


@pytest.mark.parametrize("scheduler_class", [None, HeunDiscreteScheduler])
def test_super_res_last_runs_only_the_final_model_call(pipe, scheduler_class):
    components = dict(pipe.components, super_res_last=copy.deepcopy(pipe.super_res_first))
    twin = UnCLIPPipeline(**components)
    twin.set_progress_bar_config(disable=True)
    calls = []
    for name in ("super_res_first", "super_res_last"):
        getattr(twin, name).register_forward_hook(lambda module, args, output, name=name: calls.append(name))
    scheduler = scheduler_class.from_config(pipe.super_res_scheduler.config) if scheduler_class else None
    twin.super_resolve(torch.rand(1, 3, 16, 16), num_inference_steps=3, scheduler=scheduler, generator=_generator())
    count = 3 if scheduler_class is None else 5
    assert calls == ["super_res_first"] * (count - 1) + ["super_res_last"]


def test_super_res_strength_is_saved_with_the_pipeline_and_validated(pipe, tmp_path):
    assert pipe.config.super_res_strength == 1.0
    components = {k: v for k, v in pipe.components.items()}
    tuned = UnCLIPPipeline(**components, super_res_strength=0.5)
    tuned.save_pretrained(tmp_path)
    loaded = UnCLIPPipeline.from_pretrained(tmp_path)
    assert loaded.config.super_res_strength == 0.5
    assert _super_res_timesteps(loaded, num_inference_steps=10)[0] == _super_res_timesteps(pipe, num_inference_steps=10, strength=0.5)[0]
    for bad in (0, 1.5, "half", True):
        with pytest.raises(ValueError, match="super_res_strength"):
            UnCLIPPipeline(**components, super_res_strength=bad)
        with pytest.raises(ValueError, match="strength"):
            pipe.super_resolve(torch.rand(1, 3, 16, 16), strength=bad)


def test_prior_guidance_default_is_saved_with_the_pipeline_and_an_argument_overrides_it(pipe, tmp_path):
    assert pipe.config.prior_guidance_scale == 4.0  # diffusers' and Karlo's default
    tuned = UnCLIPPipeline(**pipe.components, prior_guidance_scale=2.0)
    tuned.save_pretrained(tmp_path)
    loaded = UnCLIPPipeline.from_pretrained(tmp_path)
    assert loaded.config.prior_guidance_scale == 2.0

    def prior(p, **kwargs):
        return p.sample_prior("a cat", num_inference_steps=2, generator=_generator(), **kwargs)

    torch.testing.assert_close(prior(loaded), prior(pipe, guidance_scale=2.0))  # the saved value is the default
    torch.testing.assert_close(prior(loaded, guidance_scale=4.0), prior(pipe))  # an argument overrides it
    assert not torch.allclose(prior(loaded), prior(pipe))
    call = dict(prior_num_inference_steps=2, decoder_num_inference_steps=2, super_res_num_inference_steps=2,
                output_type="pt")
    torch.testing.assert_close(loaded("a cat", generator=_generator(), **call).image_embeds,
                               pipe("a cat", generator=_generator(), prior_guidance_scale=2.0, **call).image_embeds)
    for bad in (-1, "high", float("nan")):
        with pytest.raises(ValueError, match="prior_guidance_scale"):
            UnCLIPPipeline(**pipe.components, prior_guidance_scale=bad)
