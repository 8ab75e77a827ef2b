import numpy as np
import pytest

from ontheline.shifts import CORRUPTIONS, FAMILIES, corrupt

RNG = np.random.default_rng(0)
# Digit-like images: a bright blob on a dark background, at the two resolutions we use.
SMALL = np.clip(RNG.random((6, 8, 8)) * np.hanning(8)[None, :, None] * np.hanning(8)[None, None, :] * 2, 0, 1)
LARGE = np.clip(RNG.random((4, 28, 28)) * np.hanning(28)[None, :, None] * np.hanning(28)[None, None, :] * 2, 0, 1)


@pytest.fixture(params=sorted(CORRUPTIONS))
def kind(request):
    return request.param


def test_at_least_twelve_kinds_in_families_that_cover_them_all():
    assert len(CORRUPTIONS) >= 12
    assert sorted(k for family in FAMILIES.values() for k in family) == sorted(CORRUPTIONS)


@pytest.mark.parametrize("images", [SMALL, LARGE], ids=["8x8", "28x28"])
def test_corruptions_keep_shape_and_range_and_change_the_images(kind, images):
    for severity in range(1, 6):
        out = corrupt(images, kind, severity, seed=1)
        assert out.shape == images.shape and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
    assert not np.allclose(corrupt(images, kind, 5, seed=1), images, atol=1e-3)


def test_corruptions_are_deterministic_for_a_seed_and_leave_the_input_alone(kind):
    images = LARGE.copy()
    first, again = corrupt(images, kind, 3, seed=7), corrupt(images, kind, 3, seed=7)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(images, LARGE)


@pytest.mark.parametrize("images", [SMALL, LARGE], ids=["8x8", "28x28"])
def test_corruption_grows_with_severity(kind, images):
    distance = [np.abs(corrupt(images, kind, s, seed=3) - images).mean() for s in range(1, 6)]
    assert all(b >= a - 1e-6 for a, b in zip(distance, distance[1:])), distance
    assert distance[-1] > distance[0]


def test_colour_images_move_as_one_across_channels(kind):
    rgb = np.repeat(LARGE[..., None], 3, axis=-1)
    out = corrupt(rgb, kind, 4, seed=2)
    assert out.shape == rgb.shape
    np.testing.assert_allclose(out[..., 0], out[..., 2])
    np.testing.assert_allclose(out[..., 0], corrupt(LARGE, kind, 4, seed=2))


def test_full_inversion_at_the_highest_severity():
    np.testing.assert_allclose(corrupt(SMALL, "inversion", 5), 1 - SMALL, atol=1e-6)


@pytest.mark.parametrize(
    ("images", "kwargs", "message"),
    [
        (SMALL * 16, {}, r"values in \[0, 1\]; got \[0, .*\]. Divide by the maximum value first"),
        (SMALL[0], {}, r"must have shape \(n_images, height, width\)"),
        (SMALL, {"kind": "fog"}, r"The 'kind' parameter of corrupt must be one of"),
        (SMALL, {"severity": 6}, r"The 'severity' parameter of corrupt must be in \[1, 5\]. Got 6 instead."),
    ],
)
def test_bad_arguments_get_a_clear_error(images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        corrupt(images, **{"kind": "rotate", **kwargs})
