"""Synthetic distribution shifts for image arrays, in the style of MNIST-C and CIFAR-10-C.

Every corruption takes images ``(n_images, height, width)`` or ``(n_images, height, width,
channels)`` with values in [0, 1], a severity from 1 to 5 and a seed, and returns a new
float32 array of the same shape, clipped to [0, 1]. The random draws depend on the seed only,
not on the severity, and the severity scales them, so a corruption grows monotonically with
its severity. Everything is vectorised over images (numpy and scipy.ndimage).

>>> import numpy as np
>>> images = np.random.default_rng(0).random((4, 8, 8))
>>> corrupt(images, "rotate", severity=3, seed=1).shape
(4, 8, 8)
>>> sorted(CORRUPTIONS)[:3]
['brightness', 'contrast', 'dotted_line']
>>> FAMILIES["blur"]
('gaussian_blur', 'motion_blur')
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage
from scipy.fft import dctn, idctn

from ontheline._validation import InputError, check_choice, check_number

Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def corrupt(images: np.ndarray, kind: str, severity: int = 3, seed: int = 0) -> np.ndarray:
    """Apply the corruption ``kind`` at ``severity`` (1-5) to every image.

    Parameters
    ----------
    images : ndarray of shape (n_images, height, width) or (n_images, height, width, channels)
        Values in [0, 1].
    kind : str
        One of :data:`CORRUPTIONS`.
    severity : int, 1 to 5
    seed : int
        Seeds every random draw; the same seed gives the same output.

    Returns
    -------
    ndarray, float32, same shape as ``images``, values in [0, 1]

    References
    ----------
    .. [1] D. Hendrycks and T. Dietterich, "Benchmarking Neural Network Robustness to Common
       Corruptions and Perturbations", ICLR 2019, arXiv:1903.12261 (CIFAR-10-C's noises, blurs,
       photometric and digital corruptions).
    .. [2] N. Mu and J. Gilmer, "MNIST-C: A Robustness Benchmark for Computer Vision", arXiv 2019,
       arXiv:1906.02337 (the geometric corruptions, inversion and the overlays).

    Examples
    --------
    >>> images = np.random.default_rng(0).random((2, 8, 8))
    >>> for severity in (1, 5):  # the same draws, scaled: a stronger shift
    ...     noisy = corrupt(images, "gaussian_noise", severity=severity, seed=0)
    ...     print(noisy.shape, noisy.dtype, round(float(np.abs(noisy - images).mean()), 3))
    (2, 8, 8) float32 0.059
    (2, 8, 8) float32 0.281
    >>> corrupt(np.random.default_rng(0).random((2, 8, 8, 3)), "rotate").shape  # colour: channels move as one
    (2, 8, 8, 3)
    """
    check_choice("corrupt", "kind", kind, sorted(CORRUPTIONS))
    check_number("corrupt", "severity", severity, low=1, high=5, integer=True)
    x = _check_images(images)
    apply = CORRUPTIONS[kind]
    if x.ndim == 4:  # each channel with the same draws, so a colour image moves as one
        out = np.stack([apply(x[..., c], int(severity), np.random.default_rng(seed)) for c in range(x.shape[3])], -1)
    else:
        out = apply(x, int(severity), np.random.default_rng(seed))
    out = np.clip(out, 0.0, 1.0).astype(np.float32)
    return out


def _check_images(images: np.ndarray) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim not in (3, 4) or x.shape[0] == 0:
        raise InputError(
            f"images must have shape (n_images, height, width) or (n_images, height, width, channels); got {x.shape}."
        )
    if x.dtype.kind not in "fiu":
        raise InputError(f"images must be numeric; got dtype {x.dtype}.")
    x = x.astype(np.float64)
    if x.min() < 0 or x.max() > 1:
        raise InputError(
            f"images must have values in [0, 1]; got [{x.min():.3g}, {x.max():.3g}]. Divide by the maximum value first "
            "(for example digits.images / 16 or mnist / 255)."
        )
    return x


def _level(severity: int, values: tuple[float, float, float, float, float]) -> float:
    return values[severity - 1]


# --- noise ---------------------------------------------------------------------------------


def gaussian_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return x + _level(severity, (0.08, 0.15, 0.25, 0.35, 0.5)) * rng.standard_normal(x.shape)


def shot_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    # Poisson photon counts; drawn as a normal approximation so one uniform draw serves every severity.
    photons = _level(severity, (60.0, 25.0, 12.0, 6.0, 3.0))
    return x + np.sqrt(np.maximum(x, 1e-3) / photons) * rng.standard_normal(x.shape)


def impulse_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    u, salt = rng.random(x.shape), rng.random(x.shape) < 0.5
    hit = u < _level(severity, (0.03, 0.06, 0.10, 0.17, 0.27))
    return np.where(hit, salt.astype(float), x)


def speckle_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return x + x * _level(severity, (0.15, 0.3, 0.45, 0.6, 0.8)) * rng.standard_normal(x.shape)


# --- blur ----------------------------------------------------------------------------------


def _size(x: np.ndarray) -> float:
    """Lengths scale with the image: severities mean the same on 8x8 digits and 28x28 MNIST."""
    return float(min(x.shape[1:3]))


def gaussian_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sigma = _level(severity, (0.02, 0.035, 0.05, 0.07, 0.09)) * _size(x)
    return ndimage.gaussian_filter(x, sigma=(0.0, sigma, sigma), mode="constant")


def motion_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A horizontal, centred box blur whose half-length may be fractional, so every severity differs at 8x8 too."""
    half = _level(severity, (0.04, 0.07, 0.1, 0.135, 0.175)) * _size(x)
    whole = int(np.floor(half))
    kernel = np.ones(2 * whole + 3)
    kernel[0] = kernel[-1] = half - whole  # the partly covered pixel at each end
    return ndimage.convolve1d(x, kernel / kernel.sum(), axis=2, mode="constant")


# --- photometric ---------------------------------------------------------------------------


def contrast(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    keep = _level(severity, (0.75, 0.55, 0.4, 0.28, 0.18))
    mean = x.mean(axis=(1, 2), keepdims=True)
    return (x - mean) * keep + mean


def brightness(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return x + _level(severity, (0.1, 0.2, 0.3, 0.4, 0.5))


def inversion(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Invert a growing part of each image: a half-plane in a random direction, the whole image at severity 5."""
    n, h, w = x.shape
    angle = rng.uniform(0, 2 * np.pi, n)
    r, c = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    projection = np.cos(angle)[:, None, None] * r + np.sin(angle)[:, None, None] * c
    rank = projection.reshape(n, -1).argsort(axis=1).argsort(axis=1).reshape(x.shape) / (h * w)
    inverted = rank < _level(severity, (0.2, 0.4, 0.6, 0.8, 1.0))
    return np.where(inverted, 1.0 - x, x)


# --- resampling and compression ------------------------------------------------------------


def _area_matrix(size: int, small: int) -> np.ndarray:
    """``(small, size)`` weights averaging each of ``small`` equal cells over the pixels it overlaps."""
    edges = np.linspace(0, size, small + 1)
    left, right = edges[:-1, None], edges[1:, None]
    pixel = np.arange(size)[None, :]
    overlap = np.clip(np.minimum(right, pixel + 1) - np.maximum(left, pixel), 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def resize(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resample ``(n_images, height, width)`` images to ``size`` by exact area averaging.

    Shrinking averages the pixels each output cell covers; enlarging spreads each pixel over the
    cells it covers (so a constant image stays constant and the mean brightness is kept).

    >>> resize(np.ones((1, 28, 28)), (8, 8)).shape
    (1, 8, 8)
    """
    x = np.asarray(images, dtype=np.float64)
    rows, cols = _area_matrix(x.shape[1], size[0]), _area_matrix(x.shape[2], size[1])
    return np.einsum("ih,nhw,jw->nij", rows, x, cols)


def pixelate(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Average over a coarser grid (exact area weights), then show each coarse cell over its pixels."""
    n, h, w = x.shape
    fraction = _level(severity, (0.55, 0.45, 0.38, 0.3, 0.22))
    down_r, down_c = _area_matrix(h, max(1, round(h * fraction))), _area_matrix(w, max(1, round(w * fraction)))
    small = np.einsum("ih,nhw,jw->nij", down_r, x, down_c)  # resize(), with the matrices kept for the way back
    return small[:, down_r.argmax(axis=0)[:, None], down_c.argmax(axis=0)[None, :]]


# The JPEG standard's luminance quantisation table (ITU-T T.81, Annex K).
_JPEG_TABLE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=float,
)


def jpeg(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """JPEG's lossy step: 8x8 block DCT, quantised with the standard table at a quality level."""
    quality = _level(severity, (40, 25, 15, 10, 6))
    scale = 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality
    table = np.maximum(np.floor((_JPEG_TABLE * scale + 50.0) / 100.0), 1.0)
    n, h, w = x.shape
    ph, pw = -h % 8, -w % 8
    pixels = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="edge") * 255.0 - 128.0
    blocks = pixels.reshape(n, (h + ph) // 8, 8, (w + pw) // 8, 8).transpose(0, 1, 3, 2, 4)
    coefficients = dctn(blocks, axes=(-2, -1), norm="ortho")
    restored = idctn(np.round(coefficients / table) * table, axes=(-2, -1), norm="ortho")
    restored = restored.transpose(0, 1, 3, 2, 4).reshape(n, h + ph, w + pw)[:, :h, :w]
    return (restored + 128.0) / 255.0


# --- geometry: every warp is one map_coordinates call over the whole stack ------------------


def _warp(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Sample image i at ``(rows[i], cols[i])`` (source coordinates), bilinear, zero outside."""
    index = np.broadcast_to(np.arange(x.shape[0])[:, None, None], rows.shape)
    return ndimage.map_coordinates(x, [index, rows, cols], order=1, mode="constant", cval=0.0)


def _affine(x: np.ndarray, matrices: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Warp each image about its centre by its 2x2 matrix (output -> source) and its shift in pixels."""
    n, h, w = x.shape
    r, c = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
    grid = np.stack([r, c])  # (2, h, w)
    source = np.einsum("nij,jhw->nihw", matrices, grid) - shifts[:, :, None, None]
    return _warp(x, source[:, 0] + (h - 1) / 2, source[:, 1] + (w - 1) / 2)


def rotate(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    unit = rng.uniform(0.7, 1.0, x.shape[0]) * rng.choice([-1.0, 1.0], x.shape[0])
    angle = np.deg2rad(_level(severity, (10, 20, 30, 45, 60)) * unit)
    cos, sin = np.cos(angle), np.sin(angle)
    return _affine(x, np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], 1), np.zeros((x.shape[0], 2)))


def shear(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    unit = rng.uniform(0.7, 1.0, x.shape[0]) * rng.choice([-1.0, 1.0], x.shape[0])
    k = _level(severity, (0.15, 0.3, 0.45, 0.6, 0.8)) * unit
    matrices = np.zeros((x.shape[0], 2, 2))
    matrices[:, 0, 0] = matrices[:, 1, 1] = 1.0
    matrices[:, 1, 0] = k  # columns shift in proportion to the row
    return _affine(x, matrices, np.zeros((x.shape[0], 2)))


def scale(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Zoom out: the digit shrinks towards the centre (source coordinates grow)."""
    unit = rng.uniform(0.7, 1.0, x.shape[0])
    factor = np.asarray(1.0 + _level(severity, (0.15, 0.3, 0.5, 0.75, 1.0)) * unit)
    matrices = factor[:, None, None] * np.eye(2)[None]
    return _affine(x, matrices, np.zeros((x.shape[0], 2)))


def translate(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    direction = rng.uniform(0, 2 * np.pi, x.shape[0])
    distance = _level(severity, (0.08, 0.14, 0.2, 0.27, 0.35)) * _size(x)
    shifts = distance * np.stack([np.sin(direction), np.cos(direction)], axis=1)
    return _affine(x, np.broadcast_to(np.eye(2), (x.shape[0], 2, 2)), shifts)


def elastic(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Simard et al.'s elastic distortion: a smoothed random displacement field."""
    n, h, w = x.shape
    smooth = 0.12 * _size(x)
    field = ndimage.gaussian_filter(rng.standard_normal((2, n, h, w)), sigma=(0, 0, smooth, smooth))
    field /= np.abs(field).max(axis=(2, 3), keepdims=True) + 1e-12
    amount = _level(severity, (0.04, 0.07, 0.1, 0.13, 0.17)) * _size(x)
    r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return _warp(x, r + amount * field[0], c + amount * field[1])


# --- overlays (MNIST-C) --------------------------------------------------------------------


def _overlay(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.maximum(x, mask)


def stripe(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A bright vertical band at a random column, wider with severity."""
    n, h, w = x.shape
    width = _level(severity, (0.06, 0.1, 0.14, 0.2, 0.26)) * w
    centre = rng.uniform(0.25, 0.75, n) * w
    cols = np.arange(w)[None, :]
    band = (np.abs(cols - centre[:, None]) < width / 2).astype(float)
    return _overlay(x, np.broadcast_to(band[:, None, :], x.shape))


def _line_mask(shape: tuple[int, int, int], rows: np.ndarray, thickness: float) -> np.ndarray:
    """Pixels within ``thickness`` of a curve given as one row position per column, ``rows (n, w)``."""
    r = np.arange(shape[1])[None, :, None]
    return (np.abs(r - rows[:, None, :]) < thickness).astype(float)


def zigzag(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A bright zigzag line across the image; more and steeper zigs with severity."""
    n, h, w = x.shape
    base, phase = np.asarray(rng.uniform(0.3, 0.7, n) * h), np.asarray(rng.uniform(0, 1, n))
    zigs = _level(severity, (1.0, 1.5, 2.0, 2.5, 3.0))
    amplitude = _level(severity, (0.08, 0.12, 0.16, 0.2, 0.25)) * h
    t = (np.arange(w)[None, :] / w * zigs + phase[:, None]) % 1.0
    triangle = 4.0 * np.abs(t - 0.5) - 1.0
    return _overlay(x, _line_mask(x.shape, base[:, None] + amplitude * triangle, max(0.5, 0.04 * h)))


def dotted_line(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A bright dotted straight line across the image; denser dots with severity."""
    n, h, w = x.shape
    start, end = rng.uniform(0.2, 0.8, (2, n)) * h
    rows = start[:, None] + (end - start)[:, None] * np.arange(w)[None, :] / max(w - 1, 1)
    density = _level(severity, (0.25, 0.35, 0.5, 0.65, 0.8))
    on = np.asarray(rng.random(w) < density)  # the same columns stay lit as the severity grows: nested dots
    mask = _line_mask(x.shape, rows, max(0.5, _level(severity, (0.04, 0.05, 0.06, 0.07, 0.08)) * h))
    return _overlay(x, mask * on[None, None, :])


#: Every corruption by name: 19 kinds, each at severities 1 to 5 (see :func:`corrupt`).
CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise,
    "gaussian_blur": gaussian_blur,
    "motion_blur": motion_blur,
    "contrast": contrast,
    "brightness": brightness,
    "inversion": inversion,
    "pixelate": pixelate,
    "jpeg": jpeg,
    "rotate": rotate,
    "shear": shear,
    "scale": scale,
    "translate": translate,
    "elastic": elastic,
    "stripe": stripe,
    "zigzag": zigzag,
    "dotted_line": dotted_line,
}

#: Corruption families, for summaries: each of :data:`CORRUPTIONS` belongs to exactly one.
FAMILIES: dict[str, tuple[str, ...]] = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"),
    "blur": ("gaussian_blur", "motion_blur"),
    "photometric": ("contrast", "brightness", "inversion"),
    "digital": ("pixelate", "jpeg"),
    "geometric": ("rotate", "shear", "scale", "translate", "elastic"),
    "overlay": ("stripe", "zigzag", "dotted_line"),
}


__all__ = ["CORRUPTIONS", "FAMILIES", "corrupt", "resize"]
