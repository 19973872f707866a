"""Write (and run) the lesson notebooks of docs/lessons from the cells below.

    python docs/lessons/make_lessons.py          # write the .ipynb files and execute them in place

The notebooks are committed with their outputs (so that GitHub and the Sphinx site show them);
``tests/test_lessons.py`` executes every one of them again.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

L1 = [
    ("md", """# Lesson 1 — Maximum pooling

A convolutional network extracts features in three steps (this is how the Kaggle computer-vision
course teaches it):

1. **filter** — convolve the image with a kernel that responds to one kind of feature;
2. **detect** — keep only the positive responses (ReLU);
3. **condense** — *pool*: keep the strongest response of each small window.

This lesson runs the three steps on a real photograph shipped with scikit-learn (no download),
compares maximum with average pooling, and looks at what a one-pixel shift does to the pooled map.
Every number comes from `poolkit`."""),
    ("code", """import numpy as np
import matplotlib
matplotlib.use("Agg")
from sklearn.datasets import load_sample_image

import poolkit
from poolkit import viz

photo = load_sample_image("china.jpg")               # 427 x 640 x 3, shipped with scikit-learn
gray = photo.mean(axis=2) / 255.0
image = poolkit.avg_pool(gray[:424, :640], (4, 4))          # shrink 4x by averaging 4x4 blocks: 106 x 160
image.shape"""),
    ("md", """## Filter, detect, condense

`viz.feature_stages` applies the three steps; the kernel is the edge detector of the course."""),
    ("code", """kernel = viz.get_filter("edge")
print(kernel)
stages = viz.feature_stages(image, kernel, pool_kernel=(2, 2))
{name: a.shape for name, a in stages.items()}"""),
    ("code", """filtered = viz.convolve2d(image, kernel)
detected = np.maximum(filtered, 0)                     # ReLU
condensed = poolkit.max_pool(detected, (2, 2))
assert np.array_equal(detected, stages["detect"]) and np.array_equal(condensed, stages["max"])
# each pooled value is the largest of its 2x2 window
h, w = condensed.shape
blocks = detected[:2 * h, :2 * w].reshape(h, 2, w, 2)
assert np.array_equal(condensed, blocks.max(axis=(1, 3)))
condensed.shape"""),
    ("code", """import io
from IPython.display import Image

fig, _ = viz.feature_figure(image, kernel, kernel_name="edge", title="china.jpg: filter, detect, condense")
buf = io.BytesIO()
fig.savefig(buf, format="png", dpi=60)
Image(buf.getvalue())"""),
    ("md", """## Maximum against average

Max pooling keeps each window's strongest response; average pooling dilutes it with the weak ones
around it. The strongest edge survives max pooling unchanged:"""),
    ("code", """averaged = poolkit.avg_pool(detected, (2, 2))
print("strongest response after detect:", detected.max())
print("after max pooling:              ", condensed.max())
print("after average pooling:          ", averaged.max())
assert condensed.max() == detected.max() and averaged.max() < condensed.max()
assert np.all(averaged <= condensed)                    # a mean never exceeds the maximum"""),
    ("md", """## A one-pixel shift

Pooling is often said to make a network *invariant* to small shifts. It is only partly true. A
feature that moves **inside** a pooling window leaves the pooled map unchanged; one that crosses a
window's border moves in the pooled map too:"""),
    ("code", """x = np.zeros((4, 4)); x[1, 0] = 1.0                    # one feature at column 0
inside = np.roll(x, 1, axis=1)                          # column 1: same 2x2 window
across = np.roll(x, 2, axis=1)                          # column 2: the next window
pool = lambda a: poolkit.max_pool(a, (2, 2))
print(pool(x)); print(pool(inside)); print(pool(across))
assert np.array_equal(pool(x), pool(inside))
assert not np.array_equal(pool(x), pool(across))"""),
    ("md", """On the photograph: shift the detected features by one pixel and count how many values of the
pooled map change, against how many change without pooling."""),
    ("code", """shifted = np.zeros_like(detected); shifted[:, 1:] = detected[:, :-1]   # one pixel to the right
changed_raw = np.mean(shifted[:, 2:] != detected[:, 2:])
pooled, pooled_shifted = poolkit.max_pool(detected, (2, 2)), poolkit.max_pool(shifted, (2, 2))
changed_pooled = np.mean(pooled_shifted[:, 1:] != pooled[:, 1:])
print(f"values changed by a 1-pixel shift: {changed_raw:.1%} of the detected map, "
      f"{changed_pooled:.1%} of the max-pooled map")
assert changed_pooled < changed_raw"""),
    ("md", """Fewer values change, but most still do: one 2x2 max pooling buys only a little shift
stability. Lesson 4 shows what the measured network gains from it."""),
    ("md", """Explore any small case window by window with `poolkit.explain` (in Jupyter it is an interactive
page; printed, it is the text of `poolkit explain`):"""),
    ("code", """ex = poolkit.explain(np.round(detected[40:44, 60:64], 2), "max", kernel_size=2)
print(ex)"""),
]

L2 = [
    ("md", """# Lesson 2 — The backward pass of max pooling

Where does the gradient go? For an output `y[o] = max over the window W(o) of x`, the derivative
of `y[o]` with respect to `x[i]` is 1 where `i` is the window's maximum and 0 elsewhere. With the
chain rule, the error term of the layer is

$$\\frac{\\partial L}{\\partial x_i} = \\sum_{o:\\ i = \\arg\\max_{W(o)} x} \\frac{\\partial L}{\\partial y_o}$$

a sum, because with overlapping windows (stride smaller than the kernel) one input can be the
maximum of several windows. We build it step by step and check it against finite differences
and against PyTorch."""),
    ("code", """import numpy as np
import poolkit

x = np.array([[1., 3, 2, 1],
              [2, 9, 1, 1],
              [1, 4, 2, 3],
              [5, 6, 1, 2]])
k, s = 2, 1                                            # overlapping 2x2 windows, stride 1
y = poolkit.max_pool(x, (k, k), s)
g = np.arange(1.0, y.size + 1).reshape(y.shape)        # dL/dy: 1, 2, ... so every share can be traced
y"""),
    ("md", "## Step by step: route each window's gradient to its maximum"),
    ("code", """grad = np.zeros_like(x)
for i in range(y.shape[0]):
    for j in range(y.shape[1]):
        window = x[i * s:i * s + k, j * s:j * s + k]
        r, c = np.unravel_index(np.argmax(window), window.shape)     # first maximum, as the frameworks
        grad[i * s + r, j * s + c] += g[i, j]
        print(f"window ({i}, {j}): max {window[r, c]:g} at ({i * s + r}, {j * s + c}) gets {g[i, j]:g}")
grad"""),
    ("code", """engine = poolkit.max_pool_backward(g, x, (k, k), s)
assert np.array_equal(grad, engine)
print("x[1, 1] = 9 is the maximum of", int(sum(1 for i in range(3) for j in range(3)
                                            if x[i:i+2, j:j+2].max() == 9)), "windows; its gradient", engine[1, 1],
      "= 1 + 2 + 4 + 5")
assert engine[1, 1] == 1 + 2 + 4 + 5"""),
    ("md", """## Checked against finite differences

The loss `L = sum(g * max_pool(x))` has the gradient above wherever the maxima are unique. Central
differences on a random input (no ties):"""),
    ("code", """rng = np.random.default_rng(0)
xr = rng.standard_normal((5, 6))
gr = rng.standard_normal(poolkit.max_pool(xr, (3, 3), 2, 1).shape)
loss = lambda z: float(np.sum(gr * poolkit.max_pool(z, (3, 3), 2, 1)))
eps = 1e-6
fd = np.zeros_like(xr)
for idx in np.ndindex(*xr.shape):
    e = np.zeros_like(xr); e[idx] = eps
    fd[idx] = (loss(xr + e) - loss(xr - e)) / (2 * eps)
analytic = poolkit.max_pool_backward(gr, xr, (3, 3), 2, 1)
print("largest difference:", np.abs(fd - analytic).max())
assert np.allclose(fd, analytic, atol=1e-6)"""),
    ("md", "## Checked against PyTorch's autograd"),
    ("code", """import torch

xt = torch.tensor(xr[None, None], requires_grad=True)
yt = torch.nn.functional.max_pool2d(xt, 3, 2, 1)
yt.backward(torch.tensor(gr[None, None]))
assert np.array_equal(yt.detach().numpy()[0, 0], poolkit.max_pool(xr, (3, 3), 2, 1))
assert np.allclose(xt.grad.numpy()[0, 0], analytic, rtol=0, atol=1e-12)
print("PyTorch and poolkit agree:", np.abs(xt.grad.numpy()[0, 0] - analytic).max())"""),
    ("md", """## The whole story, window by window

`poolkit.explain(..., backward=True)` tells it in words (and draws it as an interactive page in
Jupyter, or as a GIF with `.to_gif(path)`):"""),
    ("code", """ex = poolkit.explain(x, "max", kernel_size=2, stride=1, backward=True)
assert np.array_equal(ex.grad_input, engine)
print(ex)"""),
]

L3 = [
    ("md", """# Lesson 3 — One layer, four frameworks

"A 3x3 average pooling with stride 2 and SAME padding" is not the same layer everywhere. This lesson
runs PyTorch, TensorFlow, Keras and ONNX Runtime on the same input and shows where and why the
numbers differ: SAME padding, the divisor, ceil mode and the encodings of the argmax indices.
`poolkit.resolve_padding` says what SAME means in numbers."""),
    ("code", """import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import poolkit

x = np.arange(1.0, 21.0).reshape(4, 5)
print(x)
print("SAME padding of 3x3 windows, stride 2 on 4x5:", poolkit.resolve_padding(x.shape, (3, 3), 2, "same"))"""),
    ("md", """SAME means: output `ceil(in / stride)` cells, with the padding that needs split as evenly as
possible and **the odd cell at the end**. Here rows need 1 cell of padding (after), columns 2 (one
each side)."""),
    ("code", """import tensorflow as tf
import keras
import torch
import onnx
from onnx import helper, TensorProto
import onnxruntime as ort

def onnx_pool(op, x4, **attrs):
    with_indices = op == "MaxPool" and attrs.pop("indices", False)
    node = helper.make_node(op, ["x"], ["y", "i"] if with_indices else ["y"], **attrs)
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if len(node.output) == 2:
        outs.append(helper.make_tensor_value_info("i", TensorProto.INT64, None))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x4.shape)], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x4.astype(np.float32)})   # ONNX Runtime pools float32

nhwc, nchw = x[None, :, :, None], x[None, None]
tf_same = tf.nn.avg_pool2d(nhwc, 3, 2, "SAME").numpy()[0, :, :, 0]
keras_same = keras.layers.AveragePooling2D(3, 2, padding="same")(nhwc.astype("float32")).numpy()[0, :, :, 0]
onnx_same = onnx_pool("AveragePool", nchw, kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER",
                      count_include_pad=1)[0][0, 0]
onnx_same_excl = onnx_pool("AveragePool", nchw, kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER",
                           count_include_pad=0)[0][0, 0]
ours_incl = poolkit.avg_pool(x, (3, 3), 2, "same")
ours_excl = poolkit.avg_pool(x, (3, 3), 2, "same", count_include_pad=False)
print("TensorFlow:\\n", tf_same, "\\nKeras:\\n", keras_same, "\\nONNX count_include_pad=1:\\n", onnx_same)"""),
    ("md", """## The divisor

TensorFlow and Keras divide by the cells **inside** the input only; ONNX's `count_include_pad=1`
(and poolkit's default) counts the padded zeros too. Corner windows differ:"""),
    ("code", """assert np.allclose(tf_same, ours_excl) and np.allclose(keras_same, ours_excl, rtol=1e-6)
assert np.allclose(onnx_same, ours_incl, rtol=1e-6) and np.allclose(onnx_same_excl, ours_excl, rtol=1e-6)
differ = ~np.isclose(ours_incl, ours_excl)
print("cells where the divisor matters:\\n", differ.astype(int))
assert differ.any()"""),
    ("md", """PyTorch pads both ends of an axis equally, so it **cannot** express this SAME padding (rows need
(0, 1)). The nearest it offers is `padding=1` — a different layer with a different output:"""),
    ("code", """torch_p1 = torch.nn.functional.avg_pool2d(torch.tensor(nchw), 3, 2, padding=1).numpy()[0, 0]
assert np.allclose(torch_p1, poolkit.avg_pool(x, (3, 3), 2, 1))
print("torch padding=1:\\n", torch_p1)
print("poolkit explains the gap:")
for d in poolkit.explain(x, "avg", 3, stride=2, padding="same").dialects():
    print(f"  {d.framework:10s} {d.error or ('same numbers' if d.same else d.notes)}")"""),
    ("md", """## Ceil mode

PyTorch and ONNX can round the output size up (`ceil_mode`); TensorFlow cannot. The extra window
covers what floor mode drops:"""),
    ("code", """torch_ceil = torch.nn.functional.max_pool2d(torch.tensor(nchw), 2, 2, ceil_mode=True).numpy()[0, 0]
onnx_ceil = onnx_pool("MaxPool", nchw, kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)[0][0, 0]
ours_ceil = poolkit.max_pool(x, (2, 2), 2, ceil_mode=True)
assert np.array_equal(torch_ceil, ours_ceil) and np.array_equal(onnx_ceil, ours_ceil)
print("floor:", poolkit.max_pool(x, (2, 2), 2).shape, " ceil:", ours_ceil.shape)
print(ours_ceil)"""),
    ("md", """## Where the maximum was: three index encodings

The same maxima, three ways of saying where they are: PyTorch counts within one channel's plane,
TensorFlow's `max_pool_with_argmax` counts across the flattened NHWC tensor (channels interleaved),
ONNX across the flattened NCHW tensor. With two channels:"""),
    ("code", """x2 = np.stack([x, -x])                                   # 2 channels, 4x5
_, t_idx = torch.nn.functional.max_pool2d(torch.tensor(x2[None]), 2, 2, return_indices=True)
_, tf_idx = tf.nn.max_pool_with_argmax(x2.transpose(1, 2, 0)[None], 2, 2, "VALID", include_batch_in_index=True)
o_idx = onnx_pool("MaxPool", x2[None], kernel_shape=[2, 2], strides=[2, 2], indices=True)[1]
_, ours = poolkit.max_pool(x2, (2, 2), 2, return_indices=True)
print("PyTorch (per plane):\\n", t_idx.numpy()[0])
print("TensorFlow (flat NHWC):\\n", tf_idx.numpy()[0].transpose(2, 0, 1))
print("ONNX (flat NCHW):\\n", o_idx[0])
assert np.array_equal(t_idx.numpy()[0], ours)
hw = x.size
assert np.array_equal(o_idx[0], ours + np.arange(2)[:, None, None] * hw)
assert np.array_equal(tf_idx.numpy()[0].transpose(2, 0, 1), ours * 2 + np.arange(2)[:, None, None])"""),
    ("md", """`poolkit.compat.torch`, `.tf`, `.keras` and `.onnx` reproduce each framework's rules exactly
(without the framework), and `poolkit serve` shows the differences live."""),
]

L4 = [
    ("md", """# Lesson 4 — What pooling is for

What pooling is *for* is usually stated, not measured: it "adds translation invariance", "reduces
over-fitting", "saves compute", "grows the receptive field". `poolkit lab claims` measures each claim
on real data (scikit-learn's hand-written digits) with the same small network and six choices of
downsampling, three seeds each; its report is `docs/lab/claims.md`. This lesson reads the verdicts
and re-derives the exact ones here."""),
    ("code", """import re
from pathlib import Path
import numpy as np

report = Path("../lab/claims.md").read_text()
for section in report.split("\\n## ")[1:]:
    heading = section.splitlines()[0]
    for verdict in re.findall(r"\\*\\*Verdict([^*]*)\\*\\*", section):
        print(f"{heading[:48]:48s} verdict{verdict}")"""),
    ("md", """Accuracy and over-fitting: **inconclusive** — on this task the differences are within the
noise of three seeds. Compute: **supported**. Shift invariance: supported for small shifts
against no downsampling; anti-aliased max pooling (MaxBlurPool) keeps pooled features more stable
but does not change predictions measurably here. Receptive fields: the closed form **agrees** with
the measured gradient supports at every layer.

## Compute and memory, exactly

These are counts, not measurements, so they can be recomputed here and must equal the report's:"""),
    ("code", """from poolkit.nn.lab.claims import compute_cost, receptive_field_closed_form
from poolkit.nn.lab.models import make_lenet

costs = {pool: compute_cost(make_lenet(pool, rng=np.random.default_rng(0))) for pool in ("max", "none")}
for pool, c in costs.items():
    print(f"{pool:5s} parameters {c['parameters']:6,d}  multiply-adds {c['multiply_adds']:8,d}  "
          f"activations {c['activation_bytes'] / 1024:.1f} KiB")
row = lambda pool: re.search(rf"^\\| {pool} \\| ([\\d,]+) \\| ([\\d,]+) \\|", report, re.M).groups()
for pool, c in costs.items():
    assert row(pool) == (f"{c['parameters']:,}", f"{c['multiply_adds']:,}")
print(f"without pooling: {costs['none']['multiply_adds'] / costs['max']['multiply_adds']:.2f}x the multiply-adds")"""),
    ("md", """## Receptive fields

After layers with kernels `k`, strides `s`: `r = 1 + sum_l (k_l - 1) prod_{i<l} s_i`. For
conv 3 → pool 2 → conv 3 → pool 2 (the max-pooling network):"""),
    ("code", """geoms = [(3, 1, 1, 1), (2, 2, 0, 1), (3, 1, 1, 1), (2, 2, 0, 1)]   # (kernel, stride, padding, dilation)
sizes = [receptive_field_closed_form(geoms[:n], unit=2)[0] for n in range(1, 5)]
print("receptive field after each layer:", sizes)
assert sizes == [3, 4, 8, 10]                         # the report's "3 / 3x3, 4 / 4x4, 8 / 8x8, 10 / 10x10"
assert "MaxPool2d 10 / 10x10" in report"""),
    ("md", """## A short run of your own

Two epochs of the max-pooling network on the digits (a few seconds). The lab's full run trains
30 epochs over 3 seeds for every pooling choice: `poolkit lab claims`."""),
    ("code", """from poolkit.nn.lab.data import load_digits
from poolkit.nn.lab.train import TrainConfig, fit

digits = load_digits()
model = make_lenet("max", rng=np.random.default_rng(0))
history = fit(model, digits.x_train, digits.y_train, digits.x_test, digits.y_test, TrainConfig(epochs=2))
print("test accuracy after 2 epochs:", history.test_accuracy[-1])
assert history.test_accuracy[-1] > 0.7"""),
]


def build(cells) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


LESSONS = {
    "01-maximum-pooling.ipynb": L1,
    "02-max-pooling-backward.ipynb": L2,
    "03-one-layer-four-frameworks.ipynb": L3,
    "04-what-pooling-is-for.ipynb": L4,
}


def main(argv) -> int:
    from nbclient import NotebookClient

    names = argv or list(LESSONS)
    for name in names:
        nb = build(LESSONS[name])
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
        for cell in nb.cells:
            cell.get("metadata", {}).pop("execution", None)
        nbformat.write(nb, HERE / name)
        print("wrote", HERE / name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
