"""Interpolation GIFs: looping, bouncing, and a bounded number kept on disk."""

import os

import pytest
from PIL import Image

from unclip_diffusers.app.animation import GifStore, save_gif


def test_gif_bounces_and_loops(tmp_path):
    frames = [Image.new("RGB", (8, 8), (60 * i, 0, 0)) for i in range(4)]
    path = save_gif(frames, tmp_path / "a.gif", frame_ms=100)
    with Image.open(path) as gif:
        assert gif.n_frames == 6 and gif.info["loop"] == 0  # 0 1 2 3 2 1, then around again
        colours = []
        for i in range(gif.n_frames):
            gif.seek(i)
            colours.append(gif.convert("RGB").getpixel((0, 0))[0])
    assert colours == [0, 60, 120, 180, 120, 60]
    with pytest.raises(ValueError, match="at least one frame"):
        save_gif([], tmp_path / "b.gif")


def test_store_keeps_only_the_newest(tmp_path):
    store = GifStore(keep=2, directory=str(tmp_path))
    frames = [Image.new("RGB", (4, 4), "red"), Image.new("RGB", (4, 4), "blue")]
    paths = [store.save(frames) for _ in range(3)]
    assert [os.path.exists(p) for p in paths] == [False, True, True]
