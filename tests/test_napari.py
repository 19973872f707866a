"""Pyramids written by ``poolkit.pyramid`` open in napari through the napari-ome-zarr reader
plugin, headless: ``napari.components.ViewerModel`` (the model behind ``napari.Viewer``, no Qt, no
window) with the plugins registered as ``napari.Viewer`` registers them, then
``viewer.open(path, plugin="napari-ome-zarr")``.  Checked: the layers napari makes (one per
channel when there is a ``c`` axis), that each is multiscale with every level written, each
level's data equal to the store's and to an independent block mean, where napari places the image
in the world (level 0's ``scale`` and ``translation``) and the levels' downsample factors.  The
input is an OME-Zarr image with a non-trivial scale and translation, so that a transform dropped
or applied twice shows."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import poolkit

zarr = pytest.importorskip("zarr")
distributed = pytest.importorskip("distributed")
pytest.importorskip("napari")
pytest.importorskip("napari_ome_zarr")


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes, as in ``test_pyramid.py``."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GB",
                                  dashboard_address=None, silence_logs=50) as c:
        yield c


@pytest.fixture(scope="module")
def viewer_model():
    """``ViewerModel``, after napari's plugin registration (what ``napari.Viewer`` does before it
    opens a window).  ``NAPARI_CONFIG=""`` while napari's settings module is first imported: napari
    then runs on its defaults, with no settings file read or written (a user's file might disable
    the plugin)."""
    with pytest.MonkeyPatch.context() as mp:
        if "napari.settings" not in sys.modules:
            mp.setenv("NAPARI_CONFIG", "")
        import napari.settings  # noqa: F401  (reads NAPARI_CONFIG once)
        from napari.components import ViewerModel
        from napari.plugins import _initialize_plugins

    _initialize_plugins()
    return ViewerModel


def _ome_input(path, x, axes, scale, translation, units, name):
    """A one-level OME-Zarr 0.5 image written with zarr alone: poolkit's input."""
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    g.create_array("0", shape=x.shape, dtype=x.dtype, chunks=x.shape)[...] = x
    types = {"c": "channel", "t": "time"}
    ax = [{"name": a, "type": types.get(a, "space"), **({"unit": u} if u else {})} for a, u in zip(axes, units)]
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{"name": name, "axes": ax, "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": list(scale)},
                                                    {"type": "translation", "translation": list(translation)}]}]}]}
    return str(path)


def _block_mean(x, factors):
    """Integer block mean, rounded to nearest (ties to even), of an array whose pooled axes are
    divisible by their factor: a reshape, independent of poolkit's code."""
    shape = []
    for n, f in zip(x.shape, factors):
        assert n % f == 0
        shape += [n // f, f]
    m = x.astype(np.float64).reshape(shape).mean(axis=tuple(range(1, 2 * x.ndim, 2)))
    return np.rint(m).astype(x.dtype)


def _pattern(shape, seed=13):
    """A uint16 ramp along every axis plus seeded noise in [0, 1000): about half of the block
    means are rounded up, and a few percent are ties (x.5) that go to even."""
    idx = np.indices(shape)
    ramp = sum((i + 1) * 250 * g for i, g in enumerate(idx))
    return (ramp + np.random.default_rng(seed).integers(0, 1000, shape)).astype(np.uint16)


def _store_levels(path):
    g = zarr.open_group(str(path), mode="r")
    ms = dict(g.attrs)["ome"]["multiscales"][0]
    return ms, [g[d["path"]][...] for d in ms["datasets"]]


def _level0_transform(ms):
    t = ms["datasets"][0]["coordinateTransformations"]
    assert [c["type"] for c in t] == ["scale", "translation"]
    return np.array(t[0]["scale"]), np.array(t[1]["translation"])


def _open_in_napari(viewer_model, out, scale0, trans0):
    """The pyramid at ``out``, read back (its multiscales metadata, every level, level 0's scale
    and translation, which must be the input's), then opened in a new headless viewer through the
    plugin: (metadata, stored levels, level-0 scale, level-0 translation, the layers napari made)."""
    ms, stored = _store_levels(out)
    s0, t0 = _level0_transform(ms)
    np.testing.assert_array_equal(s0, scale0)
    np.testing.assert_array_equal(t0, trans0)
    viewer = viewer_model()
    layers = viewer.open(str(out), plugin="napari-ome-zarr")
    assert list(viewer.layers) == layers
    return ms, stored, s0, t0, layers


def test_a_zyx_pyramid_opens_in_napari_as_one_multiscale_image(tmp_path, cluster, viewer_model):
    from napari.layers import Image

    x = _pattern((8, 32, 48))
    scale0, trans0 = (2.0, 0.5, 0.25), (-4.0, 10.0, 3.5)
    src = _ome_input(tmp_path / "in.zarr", x, "zyx", scale0, trans0, ("nanometer", "micrometer", "micrometer"),
                     name="cells")
    out = tmp_path / "cells.zarr"
    r = poolkit.pyramid(src, str(out), method="mean", factor=2, levels=3, chunks=(4, 16, 16),
                        scheduler=cluster.scheduler_address)
    assert r.shapes == ((8, 32, 48), (4, 16, 24), (2, 8, 12))
    ms, stored, s0, t0, layers = _open_in_napari(viewer_model, out, scale0, trans0)
    assert len(layers) == 1
    (layer,) = layers
    assert isinstance(layer, Image) and layer.name == "cells"  # the file's name: the plugin passes none
    assert layer.multiscale is True
    assert len(layer.data) == len(stored) == 3
    for lev, (got, want) in enumerate(zip(layer.data, stored)):
        a = np.asarray(got)
        assert a.dtype == np.uint16 and a.shape == r.shapes[lev]
        np.testing.assert_array_equal(a, want)  # what napari reads is what the store holds ...
        np.testing.assert_array_equal(a, _block_mean(x, (2**lev,) * 3))  # ... the exact block mean
    # where napari puts it: level 0's scale and translation become the layer's, and a level-0
    # pixel's world position is scale * index + translation
    np.testing.assert_array_equal(layer.scale, s0)
    np.testing.assert_array_equal(layer.translate, t0)
    np.testing.assert_array_equal(layer.affine.affine_matrix, np.eye(4))
    for i in [(0, 0, 0), (7, 31, 47), (3, 5, 11)]:
        np.testing.assert_array_equal(layer.data_to_world(i), s0 * np.array(i) + t0)
    # napari places level l by level 0's shape over level l's (not by the level's own transform):
    # here that is the factor 2**l written in its scale
    np.testing.assert_array_equal(layer.downsample_factors, [[1, 1, 1], [2, 2, 2], [4, 4, 4]])
    for lev, ds in enumerate(ms["datasets"]):
        level_scale = np.array(ds["coordinateTransformations"][0]["scale"])
        np.testing.assert_array_equal(layer.downsample_factors[lev], level_scale / s0)
    # napari-ome-zarr 0.8.2 passes neither axis names nor units (0.9.0 and later do, but drop the
    # translation): napari's defaults
    assert layer.axis_labels == ("-3", "-2", "-1")
    assert [str(u) for u in layer.units] == ["pixel"] * 3


def test_a_cyx_pyramid_opens_in_napari_as_one_multiscale_image_per_channel(tmp_path, cluster, viewer_model):
    from napari.layers import Image

    x = _pattern((2, 32, 40))
    x[1] = 60000 - x[1]  # the channels differ
    scale0, trans0 = (1.0, 0.75, 0.5), (0.0, 2.0, -1.0)
    src = _ome_input(tmp_path / "in.zarr", x, "cyx", scale0, trans0, (None, "micrometer", "micrometer"),
                     name="two")
    out = tmp_path / "two.zarr"
    r = poolkit.pyramid(src, str(out), method="mean", factor=2, levels=3, scheduler=cluster.scheduler_address)
    assert r.axes == "cyx" and r.shapes == ((2, 32, 40), (2, 16, 20), (2, 8, 10))
    _, stored, s0, t0, layers = _open_in_napari(viewer_model, out, scale0, trans0)
    # the plugin splits the channel axis (napari's channel_axis): one 2-D layer per channel
    assert len(layers) == 2
    assert [ly.name for ly in layers] == ["two", "two [1]"]
    for c, layer in enumerate(layers):
        assert isinstance(layer, Image) and layer.multiscale is True and layer.ndim == 2
        assert len(layer.data) == len(stored) == 3
        for lev, got in enumerate(layer.data):
            a = np.asarray(got)
            assert a.dtype == np.uint16 and a.shape == r.shapes[lev][1:]
            np.testing.assert_array_equal(a, stored[lev][c])
            np.testing.assert_array_equal(a, _block_mean(x[c], (2**lev, 2**lev)))
        # the channel axis dropped from level 0's transform
        np.testing.assert_array_equal(layer.scale, s0[1:])
        np.testing.assert_array_equal(layer.translate, t0[1:])
        np.testing.assert_array_equal(layer.data_to_world((31, 39)), s0[1:] * [31, 39] + t0[1:])
        np.testing.assert_array_equal(layer.downsample_factors, [[1, 1], [2, 2], [4, 4]])
