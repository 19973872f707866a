"""Helpers for tests that read what poolkit draws or serves: GIF frames and a running
``poolkit serve`` app."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np


def gif_frames(path) -> list:
    """Every frame of the GIF at ``path`` as an (h, w, 3) int64 RGB array (pillow needed)."""
    from PIL import Image

    frames = []
    with Image.open(path) as im:
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB"), dtype=np.int64))
    return frames


@contextlib.contextmanager
def serving() -> Iterator:
    """``poolkit serve``'s server on a free loopback port, in a daemon thread, shut down after."""
    from poolkit.serve import make_server

    srv = make_server("127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
