"""poolkit.nn's module machinery and its argument errors (ValueError/TypeError naming the argument)."""

from __future__ import annotations

import numpy as np
import pytest

from poolkit import nn


def test_state_dict_round_trip_and_copies(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=np.random.default_rng(0)), nn.ReLU(), nn.MaxBlurPool2d(2),
                          nn.Flatten(), nn.Linear(2 * 4 * 4, 3, rng=np.random.default_rng(1)))
    state = model.state_dict()
    assert list(state) == ["0.weight", "0.bias", "2.1.filt", "4.weight", "4.bias"]
    state["0.weight"][...] = 7  # a copy: the model is unchanged
    assert not (model[0].weight.data == 7).any()
    np.savez(tmp_path / "w.npz", **model.state_dict())
    other = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxBlurPool2d(2), nn.Flatten(), nn.Linear(32, 3))
    with np.load(tmp_path / "w.npz") as f:
        assert other.load_state_dict(f) == ([], [])
    x = np.random.default_rng(2).random((2, 1, 10, 10), dtype=np.float32)
    np.testing.assert_array_equal(other(x), model(x))


def test_load_state_dict_errors():
    lin = nn.Linear(3, 2)
    with pytest.raises(KeyError, match="missing keys 'bias'"):
        lin.load_state_dict({"weight": np.zeros((2, 3))})
    with pytest.raises(KeyError, match="unexpected keys 'extra'"):
        lin.load_state_dict({"weight": np.zeros((2, 3)), "bias": np.zeros(2), "extra": np.zeros(1)})
    with pytest.raises(ValueError, match=r"'weight' has shape \(3, 2\), the model expects \(2, 3\)"):
        lin.load_state_dict({"weight": np.zeros((3, 2)), "bias": np.zeros(2)})
    missing, unexpected = lin.load_state_dict({"weight": np.ones((2, 3)), "x": 1}, strict=False)
    assert missing == ["bias"] and unexpected == ["x"] and (lin.weight.data == 1).all()
    assert lin.weight.dtype == np.float32


def test_modes_no_grad_and_backward_before_forward():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.Sequential(nn.ReLU()))
    assert all(m.training for m in model.modules())
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert model[2][0].training
    with pytest.raises(TypeError, match="mode must be a bool"):
        model.train("no")
    with pytest.raises(RuntimeError, match="no forward to differentiate"):
        nn.Conv2d(1, 1, 1).backward(np.ones((1, 1, 2, 2)))
    with nn.no_grad():
        assert not nn.is_grad_enabled()
        model(np.ones((1, 2), dtype=np.float32))
    assert nn.is_grad_enabled()
    with pytest.raises(RuntimeError, match="ReLU.backward: no forward"):
        model.backward(np.ones((1, 2), dtype=np.float32))


def test_sequential_indexing_and_repr():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 2))
    tail = model[3:]
    assert list(tail.state_dict()) == ["4.weight", "4.bias"]  # names kept, as in PyTorch
    assert isinstance(model[-1], nn.Linear) and len(model) == 5
    assert repr(model).splitlines()[1] == "  (0): Conv2d(1, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
    with pytest.raises(TypeError, match="argument 1 must be a Module"):
        nn.Sequential(nn.ReLU(), np.zeros(2))


def test_parameters_are_registered_once():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(model.parameters())) == 2
    assert sum(p.numel() for p in model.parameters()) == 6


@pytest.mark.parametrize("make, x, exc, match", [
    (lambda: nn.Conv2d(3, 4, 3), np.zeros((3, 8)), ValueError, r"Conv2d: input must be 3-D .* or 4-D"),
    (lambda: nn.Conv2d(3, 4, 3), np.zeros((1, 2, 8, 8)), ValueError, r"input has 2 channels .* in_channels=3"),
    (lambda: nn.Conv1d(3, 4, 5), np.zeros((1, 3, 2)), ValueError, "smaller than the kernel's span"),
    (lambda: nn.Conv2d(1, 1, 3, padding=2, padding_mode="reflect"), np.zeros((1, 1, 2, 2)), ValueError,
     "reflect padding"),
    (lambda: nn.Conv2d(1, 1, 1), np.array([["a"]]), TypeError, "real numeric"),
    (lambda: nn.Linear(4, 2), np.zeros((3, 5)), ValueError, r"in_features=4"),
    (lambda: nn.Embedding(5, 2), np.array([1, 5]), ValueError, r"ids must lie in \[0, 5\)"),
    (lambda: nn.Embedding(5, 2), np.array([1.0]), TypeError, "integer token ids"),
    (lambda: nn.MaxPool2d(2, padding=2), np.zeros((1, 1, 8, 8)), ValueError, "pad should be at most half"),
    (lambda: nn.MaxPool2d(2), np.zeros(8), ValueError, "Expected 3D or 4D"),
    (lambda: nn.AvgPool1d(4), np.zeros((1, 1, 2)), ValueError, "Output size is too small"),
    (lambda: nn.BlurPool2d(3), np.zeros((1, 2, 8, 8)), ValueError, r"channels=3"),
    (lambda: nn.SpatialPyramidPool(), np.zeros((2, 3)), ValueError, "at least one spatial axis"),
    (lambda: nn.GlobalAvgPool(), np.zeros((2, 3)), ValueError, r"\(N, C, \*spatial\)"),
    (lambda: nn.Flatten(2, 1), np.zeros((2, 3, 4)), ValueError, "start_dim=2, end_dim=1"),
])
def test_forward_errors(make, x, exc, match):
    with pytest.raises(exc, match=match):
        make()(x)


def test_masked_pool_errors():
    pool = nn.MaskedPool1d()
    x = np.zeros((2, 3, 5))
    with pytest.raises(ValueError, match="exactly one of lengths= and mask="):
        pool(x)
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, 5\]"):
        pool(x, lengths=np.array([6, 1]))
    with pytest.raises(ValueError, match="lengths must be 2 ints"):
        pool(x, lengths=np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"mask must have shape \(N, L\)"):
        pool(x, mask=np.ones((2, 4), dtype=bool))
    with pytest.raises(ValueError, match="input must be 3-D"):
        pool(np.zeros((2, 5)), lengths=np.array([1, 2]))


@pytest.mark.parametrize("make, exc, match", [
    (lambda: nn.Conv2d(3, 4, 2.5), TypeError, "kernel_size must be an int or a tuple of 2 ints"),
    (lambda: nn.Conv2d(3, 4, (3, 3, 3)), TypeError, "kernel_size"),
    (lambda: nn.Conv2d(3, 4, 3, stride=0), ValueError, "stride must be >= 1"),
    (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError, "in_channels=3 must be divisible by groups=2"),
    (lambda: nn.Conv2d(4, 3, 3, groups=2), ValueError, "out_channels=3 must be divisible by groups=2"),
    (lambda: nn.Conv2d(0, 4, 3), ValueError, "in_channels must be >= 1"),
    (lambda: nn.Conv2d(3, 4, 3, padding="full"), ValueError, "padding must be"),
    (lambda: nn.Conv2d(3, 4, 3, padding=-1), ValueError, "padding must be >= 0"),
    (lambda: nn.Conv2d(3, 4, 3, stride=2, padding="same"), ValueError, "padding='same' is not supported"),
    (lambda: nn.Conv1d(3, 4, 3, padding_mode="mirror"), ValueError, "padding_mode must be one of"),
    (lambda: nn.Conv1d(3, 4, 3, dtype=np.int32), TypeError, "dtype must be a float dtype"),
    (lambda: nn.Conv1d(3, 4, 3, rng=0), TypeError, "rng must be a numpy.random.Generator"),
    (lambda: nn.Linear(3.0, 2), TypeError, "in_features must be an int"),
    (lambda: nn.Embedding(5, 2, padding_idx=5), ValueError, "padding_idx must be within"),
    (lambda: nn.Dropout(1.5), ValueError, "p must be a probability"),
    (lambda: nn.LPPool2d("2", 2), TypeError, "norm_type must be a number"),
    (lambda: nn.FractionalMaxPool2d(2), ValueError, "output size, or a pooling ratio"),
    (lambda: nn.FractionalMaxPool2d(2, output_ratio=1.5), ValueError, "output_ratio must be between 0 and 1"),
    (lambda: nn.SpatialPyramidPool((1, 0)), ValueError, "levels must be positive ints"),
    (lambda: nn.SpatialPyramidPool(mode="min"), ValueError, "mode must be 'max' or 'avg'"),
    (lambda: nn.MaskedPool1d("median"), ValueError, "mode must be"),
    (lambda: nn.BlurPool2d(2, filt_size=8), ValueError, "filt_size must be an int from 1 to 7"),
    (lambda: nn.BlurPool2d(2, pad_type="wrap"), ValueError, "pad_type must be"),
    (lambda: nn.CrossEntropyLoss(reduction="avg"), ValueError, "reduction must be"),
    (lambda: nn.CrossEntropyLoss(label_smoothing=2), ValueError, "label_smoothing must be in"),
    (lambda: nn.MSELoss(reduction=None), ValueError, "reduction must be"),
])
def test_constructor_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_loss_errors():
    ce = nn.CrossEntropyLoss()
    with pytest.raises(TypeError, match="target must hold integer class indices"):
        ce(np.zeros((2, 3), dtype=np.float32), np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="input must hold float logits"):
        ce(np.zeros((2, 3), dtype=np.int64), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"target shape \(3,\) does not match input shape \(2, 3\)"):
        ce(np.zeros((2, 3), dtype=np.float32), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"target values must lie in \[0, 3\)"):
        ce(np.zeros((2, 3), dtype=np.float32), np.array([0, 3]))
    with pytest.raises(ValueError, match="target shape"):
        nn.MSELoss()(np.zeros(3), np.zeros(4))


def test_backward_shape_errors():
    conv = nn.Conv2d(1, 2, 3)
    conv(np.zeros((1, 1, 5, 5)))
    with pytest.raises(ValueError, match=r"grad_output has shape \(1, 2, 2, 2\), expected \(1, 2, 3, 3\)"):
        conv.backward(np.zeros((1, 2, 2, 2)))
    pool = nn.MaxPool2d(2)
    pool(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="grad_output has shape"):
        pool.backward(np.zeros((1, 1, 3, 3)))
