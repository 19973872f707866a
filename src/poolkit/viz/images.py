"""Images and filters for the feature-extraction pictures: a sample scene drawn in code, an image
loader (pillow), the named 3x3 filters and the "convolution" of a CNN layer."""

from __future__ import annotations

import numpy as np

__all__ = ["FILTERS", "sample_image", "load_image", "get_filter", "convolve2d"]

#: Named 3x3 convolution kernels (the ones the Kaggle computer-vision course uses).
FILTERS = {
    "edge": ((-1, -1, -1), (-1, 8, -1), (-1, -1, -1)),
    "sobel-x": ((-1, 0, 1), (-2, 0, 2), (-1, 0, 1)),
    "sobel-y": ((-1, -2, -1), (0, 0, 0), (1, 2, 1)),
    "sharpen": ((0, -1, 0), (-1, 5, -1), (0, -1, 0)),
}


def _shape_str(shape, sep: str = "×") -> str:
    return sep.join(str(int(s)) for s in shape)


def sample_image(size: int = 128) -> np.ndarray:
    """A small grayscale scene (a house, a tree and the sun), drawn procedurally.

    Hard-edged shapes of different brightness on a smooth sky, so an edge filter has something
    to find.  Nothing is downloaded or read from disk.

    Parameters
    ----------
    size : int, optional
        Side length in pixels (at least 16).

    Returns
    -------
    image : (size, size) ndarray of float64
        Brightness in ``[0, 1]``.

    Examples
    --------
    >>> from poolkit.viz import sample_image
    >>> img = sample_image()
    >>> img.shape, img.dtype, bool(0 <= img.min() < img.max() <= 1)
    ((128, 128), dtype('float64'), True)
    """
    size = int(size)
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    img = 0.78 - 0.25 * y  # sky, brighter towards the top
    img = np.where((x - 0.84) ** 2 + (y - 0.15) ** 2 < 0.09**2, 0.98, img)  # sun
    ground = y > 0.8
    img = np.where(ground, 0.32 + 0.06 * (np.floor(x * 16) % 2), img)  # ploughed field
    img = np.where((np.abs(x - 0.82) < 0.025) & (y > 0.55) & (y <= 0.8), 0.25, img)  # trunk
    img = np.where((x - 0.82) ** 2 + (y - 0.47) ** 2 < 0.12**2, 0.5, img)  # crown
    body = (x > 0.14) & (x < 0.62) & (y > 0.46) & (y <= 0.8)
    img = np.where(body, 0.62, img)
    roof = (y > 0.2) & (y <= 0.46) & (np.abs(x - 0.38) < (y - 0.2) / 0.26 * 0.3)
    img = np.where(roof, 0.16, img)
    img = np.where((x > 0.33) & (x < 0.44) & (y > 0.6) & (y <= 0.8), 0.1, img)  # door
    for x0 in (0.19, 0.5):  # windows
        img = np.where((x > x0) & (x < x0 + 0.08) & (y > 0.53) & (y < 0.63), 0.95, img)
    return np.clip(img, 0.0, 1.0)


def load_image(path, max_side: int | None = 256) -> np.ndarray:
    """Read a PNG/JPEG (anything pillow reads) as a grayscale float image in ``[0, 1]``.

    Parameters
    ----------
    path : str or path-like
        The image file.
    max_side : int or None, optional
        Shrink the image (keeping its aspect) so that its longer side is at most this many
        pixels; ``None`` or 0 keeps the full size.

    Returns
    -------
    image : (H, W) ndarray of float64
    """
    from PIL import Image, ImageOps

    with Image.open(path) as opened:
        im = ImageOps.exif_transpose(opened)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            background = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(background, im)
        im = im.convert("L")
        if max_side and max(im.size) > max_side:
            im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        return np.asarray(im, dtype=np.float64) / 255.0


def get_filter(name: str) -> np.ndarray:
    """One of the named kernels of :data:`FILTERS` as a float64 array.

    Examples
    --------
    >>> from poolkit.viz import get_filter
    >>> get_filter("sobel-x")
    array([[-1.,  0.,  1.],
           [-2.,  0.,  2.],
           [-1.,  0.,  1.]])
    """
    try:
        return np.array(FILTERS[name], dtype=np.float64)
    except KeyError:
        raise ValueError(f"unknown filter {name!r}; choose one of {', '.join(FILTERS)}") from None


def convolve2d(image, kernel) -> np.ndarray:
    """The "convolution" of a CNN layer: slide ``kernel`` over ``image`` without flipping it.

    This is cross-correlation with no padding ("valid"), as ``tf.nn.conv2d`` and
    ``torch.nn.functional.conv2d`` compute it: ``out[i, j] = sum(image[i:i+kh, j:j+kw] * kernel)``.

    Parameters
    ----------
    image : (H, W) array_like
    kernel : (kh, kw) array_like
        No larger than ``image``.

    Returns
    -------
    out : (H - kh + 1, W - kw + 1) ndarray of float64

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.viz import convolve2d
    >>> convolve2d(np.arange(16.).reshape(4, 4), [[1, 0], [0, -1]])
    array([[-5., -5., -5.],
           [-5., -5., -5.],
           [-5., -5., -5.]])
    """
    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError(f"convolve2d needs a 2-D image and a 2-D kernel, got shapes {image.shape} and {kernel.shape}")
    if kernel.size == 0 or kernel.shape[0] > image.shape[0] or kernel.shape[1] > image.shape[1]:
        raise ValueError(f"the filter ({_shape_str(kernel.shape, 'x')}) must be non-empty and no larger than the image "
                         f"({_shape_str(image.shape, 'x')})")
    windows = np.lib.stride_tricks.sliding_window_view(image, kernel.shape)
    return np.einsum("ijkl,kl->ij", windows, kernel)


