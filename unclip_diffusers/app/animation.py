"""Writing interpolation frames as a looping GIF that the app offers for download."""

from __future__ import annotations

import os
import tempfile
import threading
from collections import deque

from PIL import Image


def save_gif(frames: list[Image.Image], path: str | os.PathLike, frame_ms: int = 200, bounce: bool = True) -> str:
    """Save `frames` as an endlessly looping GIF; with `bounce`, play forward then back so the loop has no jump."""
    if not frames:
        raise ValueError("A GIF needs at least one frame.")
    if frame_ms < 20:
        raise ValueError(f"frame_ms must be at least 20 (browsers slow faster GIFs down), got {frame_ms}.")
    sequence = list(frames) + (list(frames[-2:0:-1]) if bounce else [])
    first, *rest = [frame.convert("RGB") for frame in sequence]
    first.save(path, format="GIF", save_all=True, append_images=rest, duration=frame_ms, loop=0, optimize=False)
    return os.fspath(path)


class GifStore:
    """Writes GIFs into one temporary folder and deletes the oldest beyond `keep`, so a long-running app does not
    fill its disk (Gradio copies each returned file into its own cache before it is served)."""

    def __init__(self, keep: int = 32, directory: str | None = None):
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}.")
        self.directory = directory or tempfile.mkdtemp(prefix="unclip-app-gifs-")
        self._paths: deque[str] = deque()
        self.keep = keep
        self._lock = threading.Lock()

    def save(self, frames: list[Image.Image], frame_ms: int = 200) -> str:
        """Write `frames` to a new GIF file and return its path."""
        handle, path = tempfile.mkstemp(suffix=".gif", prefix="interpolation-", dir=self.directory)
        os.close(handle)
        save_gif(frames, path, frame_ms=frame_ms)
        with self._lock:
            self._paths.append(path)
            stale = [self._paths.popleft() for _ in range(len(self._paths) - self.keep)]
        for old in stale:
            if os.path.exists(old):
                os.remove(old)
        return path
