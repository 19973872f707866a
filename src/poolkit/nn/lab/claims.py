"""``poolkit lab claims``: six claims made about pooling, measured, with verdicts computed from the numbers.

The same LeNet-style network (:func:`poolkit.nn.lab.models.make_lenet`) is trained on the digits
with each pooling choice (max, avg, lp, maxblur, stride, none) over several seeds, and then:

1. accuracy -- test accuracy, mean +- std over seeds;
2. over-fitting -- the train - test accuracy gap;
3. compute and memory -- parameters, multiply-adds per image, activation memory, seconds per epoch;
4. invariance -- Zhang's consistency (do two random shifts of one test image, up to +-k pixels, get
   the same class?) and the cosine similarity of the pooled feature maps against the shift; the
   same for small rotations and scalings;
5. receptive field -- Araujo et al.'s closed form against the measured non-zero region of the
   input gradient of one unit, layer by layer;
6. variable-length text -- a 1-D CNN with masked max pooling over generated token sequences: its
   accuracy, its fixed-length pooled vector, and a padded batch against one sequence at a time.

A verdict compares two mean values over seeds and calls a difference only when it exceeds twice
its standard error (``sqrt(s1**2/n + s2**2/n)``, sample standard deviations); otherwise it says
"within noise".  With one seed there is no noise estimate, and the report says so.

:func:`run_claims` does everything and writes ``claims.md``, ``claims.json`` and ``claims.png``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ... import nn
from . import data as D
from .models import POOLS, TextCNN, feature_extractor, make_lenet
from .train import Progress, TrainConfig, fit, predict

__all__ = ["ClaimsConfig", "quick_config", "run_claims", "receptive_field_closed_form", "compute_cost",
           "compare", "leaf_layers"]


@dataclass
class ClaimsConfig:
    """Settings of ``poolkit lab claims`` (the defaults are the full run).

    Examples
    --------
    >>> from poolkit.nn.lab.claims import ClaimsConfig
    >>> cfg = ClaimsConfig()
    >>> cfg.seeds, cfg.epochs, cfg.pools
    (3, 30, ('max', 'avg', 'lp', 'maxblur', 'stride', 'none'))
    """

    seeds: int = 3
    epochs: int = 30
    lr: float = 3e-3
    batch_size: int = 32
    pools: tuple = POOLS
    max_shift: int = 2             # consistency: two random shifts of up to +-max_shift pixels per axis
    curve_shift: int = 4           # cosine similarity against shifts of 0..curve_shift pixels
    max_angle: float = 15.0        # rotations up to +-max_angle degrees
    max_scale: float = 0.15        # scalings in [1 - max_scale, 1 + max_scale]
    n_invariance: int = 0          # test images for claim 4 (0: all 450)
    rf_probes: int = 64            # random inputs whose gradient supports are united (claim 5)
    text_train: int = 2000
    text_test: int = 1000
    text_epochs: int = 3
    quick: bool = False


def quick_config(**overrides) -> ClaimsConfig:
    """A reduced setting for CI: one seed, 2 epochs, 100 invariance images, a small text task.

    Examples
    --------
    >>> from poolkit.nn.lab.claims import quick_config
    >>> cfg = quick_config(epochs=1)
    >>> cfg.seeds, cfg.epochs, cfg.quick
    (1, 1, True)
    """
    cfg = ClaimsConfig(seeds=1, epochs=2, n_invariance=100, rf_probes=32, text_train=300, text_test=200,
                       text_epochs=2, quick=True)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


# ---------------------------------------------------------------------------------------------
# statistics and verdicts
# ---------------------------------------------------------------------------------------------


def _ms(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def compare(a, b) -> dict:
    """Is mean(a) above, below or within noise of mean(b)?  Two standard errors decide.

    Examples
    --------
    >>> from poolkit.nn.lab.claims import compare
    >>> compare([0.98, 0.99, 0.985], [0.95, 0.96, 0.955])["relation"]
    'higher'
    >>> compare([0.98, 0.96], [0.97, 0.975])["relation"]
    'within noise'
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diff = float(a.mean() - b.mean())
    se = math.sqrt((a.var(ddof=1) / a.size if a.size > 1 else 0.0) + (b.var(ddof=1) / b.size if b.size > 1 else 0.0))
    if abs(diff) > 2 * se and diff != 0:
        rel = "higher" if diff > 0 else "lower"
    else:
        rel = "within noise"
    return {"difference": diff, "standard_error": se, "relation": rel, "n": [int(a.size), int(b.size)]}


def _pm(values, digits: int = 4) -> str:
    m, s = _ms(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


# ---------------------------------------------------------------------------------------------
# claim 3: compute and memory
# ---------------------------------------------------------------------------------------------


def leaf_layers(model: nn.Module) -> list:
    """The model's layers in order, nested ``Sequential``s (such as ``MaxBlurPool2d``) opened up.

    Examples
    --------
    >>> from poolkit import nn
    >>> from poolkit.nn.lab.claims import leaf_layers
    >>> [type(m).__name__ for m in leaf_layers(nn.Sequential(nn.ReLU(), nn.MaxBlurPool2d(4)))]
    ['ReLU', 'MaxPool2d', 'BlurPool2d']
    """
    out = []
    for m in (model if isinstance(model, nn.Sequential) else [model]):
        if isinstance(m, nn.Sequential):
            out += leaf_layers(m)
        else:
            out.append(m)
    return out


def compute_cost(model: nn.Sequential, image_size: int = 20) -> dict:
    """Parameters, multiply-adds, pooling window reads and activation memory for one image.

    Multiply-adds count the convolutions (``outputs * in_channels / groups * prod(kernel)``), the
    linear layers and the fixed blur filter (as the depthwise convolution it is).  Pooling
    window reads (``outputs * window size``) are comparisons or additions, counted apart.
    Activation memory is the float32 bytes of every layer's output (``Flatten``'s is a view).

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn.lab.claims import compute_cost
    >>> from poolkit.nn.lab.models import make_lenet
    >>> c = compute_cost(make_lenet("max", rng=np.random.default_rng(0)))
    >>> c["parameters"], c["multiply_adds"], c["pool_reads"], c["activation_bytes"]
    (5258, 148000, 4800, 43240)
    """
    params = sum(p.numel() for p in model.parameters())
    macs = reads = act = 0
    x = np.zeros((1, 1, image_size, image_size), dtype=np.float32)
    with nn.no_grad():
        for layer in leaf_layers(model):
            y = layer(x)
            if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
                macs += y.size * (layer.in_channels // layer.groups) * math.prod(layer.kernel_size)
            elif isinstance(layer, nn.Linear):
                macs += layer.in_features * layer.out_features
            elif isinstance(layer, nn.BlurPool2d):
                macs += y.size * layer.filt_size ** 2
            elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d, nn.LPPool2d)):
                k = layer.kernel_size
                reads += y.size * (k * k if isinstance(k, int) else math.prod(k))
            if not isinstance(layer, nn.Flatten):
                act += y.size * 4
            x = y
    return {"parameters": int(params), "multiply_adds": int(macs), "pool_reads": int(reads),
            "activation_bytes": int(act)}


# ---------------------------------------------------------------------------------------------
# claim 4: invariance
# ---------------------------------------------------------------------------------------------


@dataclass
class _Probe:
    """Transformed copies of the test images, shared by every network of one seed."""

    x: np.ndarray
    pairs: dict = field(default_factory=dict)     # kind -> (images A, images B)
    curves: dict = field(default_factory=dict)    # kind -> (values, [images per value])


def _make_probe(x: np.ndarray, seed: int, cfg: ClaimsConfig, log: Callable[[str], None] = lambda s: None) -> _Probe:
    rng = np.random.default_rng([seed, 2])
    n = len(x)
    k, amax, smax = cfg.max_shift, cfg.max_angle, cfg.max_scale
    probe = _Probe(x)
    d = rng.integers(-k, k + 1, size=(2, n, 2))
    probe.pairs["shift"] = (D.shift(x, d[0, :, 0], d[0, :, 1]), D.shift(x, d[1, :, 0], d[1, :, 1]))
    a = rng.uniform(-amax, amax, size=(2, n))
    probe.pairs["rotation"] = (D.affine(x, a[0]), D.affine(x, a[1]))
    s = rng.uniform(1 - smax, 1 + smax, size=(2, n))
    probe.pairs["scale"] = (D.affine(x, 0.0, s[0]), D.affine(x, 0.0, s[1]))
    log(f"seed {seed}: random pairs of shifts, rotations and scalings ready")
    shifts = list(range(cfg.curve_shift + 1))
    # a shift of s pixels: half the images moved right, half moved down (alternating)
    right = np.arange(n) % 2 == 0
    probe.curves["shift"] = (shifts, [D.shift(x, np.where(right, 0, v), np.where(right, v, 0)) for v in shifts])
    angles = [float(v) for v in np.linspace(-amax, amax, 7)]
    probe.curves["rotation"] = (angles, [D.affine(x, v) for v in angles])
    log(f"seed {seed}: shifted and rotated copies ready")
    scales = [float(v) for v in np.linspace(1 - smax, 1 + smax, 7)]
    probe.curves["scale"] = (scales, [D.affine(x, 0.0, v) for v in scales])
    return probe


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    ok = (na > 0) & (nb > 0)
    return float(np.mean(np.sum(a[ok] * b[ok], axis=1) / (na[ok] * nb[ok]))) if ok.any() else float("nan")


def _invariance(model: nn.Sequential, probe: _Probe) -> dict:
    feats = feature_extractor(model)
    out: dict[str, dict] = {"consistency": {}, "cosine": {}}
    for kind, (xa, xb) in probe.pairs.items():
        out["consistency"][kind] = float(np.mean(predict(model, xa).argmax(1) == predict(model, xb).argmax(1)))
    f0 = predict(feats, probe.x)
    for kind, (values, images) in probe.curves.items():
        out["cosine"][kind] = {"values": values, "cosine": [_cosine(f0, predict(feats, im)) for im in images]}
    return out


# ---------------------------------------------------------------------------------------------
# claim 5: receptive fields
# ---------------------------------------------------------------------------------------------


def _geometry(layer) -> tuple[int, int, int, int] | None:
    """(kernel, stride, left padding, dilation) along one axis, or None for a layer without one."""
    if isinstance(layer, nn.Conv2d):
        return layer.kernel_size[0], layer.stride[0], layer._pads[0][0], layer.dilation[0]
    if isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d, nn.LPPool2d)):
        k = layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
        s = k if layer.stride is None else (layer.stride if isinstance(layer.stride, int) else layer.stride[0])
        p = getattr(layer, "padding", 0)
        p = p if isinstance(p, int) else p[0]
        d = getattr(layer, "dilation", 1)
        d = d if isinstance(d, int) else d[0]
        return k, s, p, d
    if isinstance(layer, nn.BlurPool2d):
        return layer.filt_size, layer.stride, layer._pads[0][0], 1
    if isinstance(layer, nn.ReLU):
        return 1, 1, 0, 1
    return None


def receptive_field_closed_form(geoms: list, unit: int) -> tuple[int, int]:
    """Size and first input position of unit ``unit``'s receptive field after the layers ``geoms``.

    Araujo, Norris & Sim (2019), "Computing Receptive Fields of Convolutional Neural Networks",
    Distill, eqs. (2) and (3) with dilation folded into the kernel (``k' = d (k - 1) + 1``)::

        r = 1 + sum_l (k'_l - 1) * prod_{i<l} s_i
        start = unit * prod_l s_l - sum_l p_l * prod_{i<l} s_i

    Examples
    --------
    >>> from poolkit.nn.lab.claims import receptive_field_closed_form
    >>> receptive_field_closed_form([(3, 1, 1, 1), (2, 2, 0, 1), (3, 1, 1, 1), (2, 2, 0, 1)], unit=2)
    (10, 5)
    """
    r, start_off, jump = 1, 0, 1
    for k, s, p, d in geoms:
        r += (d * (k - 1)) * jump
        start_off += p * jump
        jump *= s
    return r, unit * jump - start_off


def _positive_copy(layers: list) -> list:
    out = []
    for layer in layers:
        c = copy.deepcopy(layer)
        for name, p in c.named_parameters():
            p.data[...] = np.abs(p.data) if name.endswith("weight") else 0
        out.append(c)
    return out


def _receptive_fields(model: nn.Sequential, probes: int, seed: int, image_size: int = 20) -> list:
    """Closed form against measurement, for one unit (channel 0, the centre) after every layer."""
    layers = leaf_layers(feature_extractor(model))
    pos = _positive_copy(layers)
    rng = np.random.default_rng([seed, 5])
    x = rng.uniform(0.5, 1.5, size=(probes, 1, image_size, image_size)).astype(np.float32)
    rows, geoms = [], []
    for depth, layer in enumerate(layers):
        g = _geometry(layer)
        if g is None:
            raise ValueError(f"receptive field: no geometry for {type(layer).__name__}")
        geoms.append(g)
        h = x
        for m in pos[:depth + 1]:
            h = m(h)
        oh, ow = h.shape[-2:]
        uh, uw = oh // 2, ow // 2
        grad = np.zeros_like(h)
        grad[:, 0, uh, uw] = 1
        for m in reversed(pos[:depth + 1]):
            grad = m.backward(grad)
        support = np.any(grad != 0, axis=(0, 1))
        r, start_h = receptive_field_closed_form(geoms, uh)
        _, start_w = receptive_field_closed_form(geoms, uw)
        expected = np.zeros((image_size, image_size), dtype=bool)
        expected[max(start_h, 0):max(start_h + r, 0), max(start_w, 0):max(start_w + r, 0)] = True
        ys, xs = np.nonzero(support)
        measured = ([int(ys.min()), int(ys.max())], [int(xs.min()), int(xs.max())]) if ys.size else None
        rows.append({
            "layer": depth, "name": type(layer).__name__, "kernel": g[0], "stride": g[1], "padding": g[2],
            "dilation": g[3], "unit": [uh, uw], "closed_form_size": r,
            "closed_form_rows": [start_h, start_h + r - 1], "closed_form_cols": [start_w, start_w + r - 1],
            "measured_rows": measured[0] if measured else None, "measured_cols": measured[1] if measured else None,
            "measured_size": [int(measured[0][1] - measured[0][0] + 1), int(measured[1][1] - measured[1][0] + 1)]
            if measured else [0, 0],
            "clipped_by_image": bool(min(start_h, start_w) < 0 or max(start_h, start_w) + r > image_size),
            "agree": bool(np.array_equal(support, expected)),
        })
    return rows


# ---------------------------------------------------------------------------------------------
# claim 6: variable-length text
# ---------------------------------------------------------------------------------------------


def _text_logits(model: TextCNN, seqs: list, batch: int = 100, masked: bool = True) -> np.ndarray:
    out = []
    with nn.no_grad():
        for i in range(0, len(seqs), batch):
            tok, lengths = D.pad_batch(seqs[i:i + batch])
            if not masked:  # plain max over the padded length: every position counts
                lengths = np.full_like(lengths, tok.shape[1])
            out.append(model(tok, lengths))
    return np.concatenate(out)


def _text_run(cfg: ClaimsConfig, seed: int, task: D.TextTask, log: Callable[[str], None]) -> dict:
    model = TextCNN(task.vocab_size, task.n_classes, rng=np.random.default_rng(seed))
    opt = nn.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng([seed, 6])
    t0 = time.monotonic()
    for epoch in range(1, cfg.text_epochs + 1):
        order = rng.permutation(len(task.train))
        total = 0.0
        for b in range(0, len(order), 32):
            idx = order[b:b + 32]
            tok, lengths = D.pad_batch([task.train[i] for i in idx])
            loss = loss_fn(model(tok, lengths), task.y_train[idx])
            model.backward(loss_fn.backward())
            opt.step()
            opt.zero_grad()
            total += float(loss) * len(idx)
        log(f"text seed {seed} epoch {epoch}/{cfg.text_epochs}  loss {total / len(order):.4f}")
    seconds = time.monotonic() - t0
    log(f"text seed {seed}: comparing a padded batch with one sequence at a time ({len(task.test)} sequences)")
    batched = _text_logits(model, task.test)
    single = np.concatenate([_text_logits(model, [s], batch=1) for s in task.test])
    raw_batched = _text_logits(model, task.test, masked=False)
    lengths = np.array([len(s) for s in task.test])
    with nn.no_grad():
        short, long = task.test[int(lengths.argmin())], task.test[int(lengths.argmax())]
        f_short = model.features(short[None], np.array([len(short)])).shape[1]
        f_long = model.features(long[None], np.array([len(long)])).shape[1]
    train_lengths = [len(s) for s in task.train]
    seen = lengths <= max(train_lengths)
    pred = batched.argmax(1)
    return {
        "seed": seed,
        "test_accuracy": float(np.mean(pred == task.y_test)),
        "test_accuracy_seen_lengths": float(np.mean(pred[seen] == task.y_test[seen])) if seen.any() else None,
        "test_accuracy_longer_than_training":
            float(np.mean(pred[~seen] == task.y_test[~seen])) if (~seen).any() else None,
        "train_seconds": seconds,
        "pooled_length_shortest": int(f_short), "pooled_length_longest": int(f_long),
        "shortest": int(lengths.min()), "longest": int(lengths.max()),
        "train_length_range": [int(min(train_lengths)), int(max(train_lengths))],
        "masked_max_abs_logit_difference": float(np.max(np.abs(batched - single))),
        "masked_bitwise_equal": bool(np.array_equal(batched, single)),
        "masked_prediction_mismatches": int(np.sum(batched.argmax(1) != single.argmax(1))),
        "unmasked_max_abs_logit_difference": float(np.max(np.abs(raw_batched - single))),
        "unmasked_prediction_mismatches": int(np.sum(raw_batched.argmax(1) != single.argmax(1))),
        "unmasked_test_accuracy": float(np.mean(raw_batched.argmax(1) == task.y_test)),
        "n_test": len(task.test),
        "_scatter": (lengths.tolist(), np.abs(batched - single).max(axis=1).tolist(),
                     np.abs(raw_batched - single).max(axis=1).tolist()),
    }


# ---------------------------------------------------------------------------------------------
# the whole run
# ---------------------------------------------------------------------------------------------


def run_claims(out_dir, cfg: ClaimsConfig | None = None, log: Callable[[str], None] = print) -> dict:
    """Run every experiment, write ``claims.md``, ``claims.json`` and ``claims.png`` into ``out_dir``.

    ``log`` receives the progress lines (at least one every couple of seconds).  Returns the
    results as written to ``claims.json``.  Needs scikit-learn and matplotlib.

    Examples
    --------
    >>> from poolkit.nn.lab.claims import quick_config, run_claims
    >>> res = run_claims("lab-out", quick_config(), log=lambda line: None)   # doctest: +SKIP
    >>> res["verdicts"]["receptive_field"]["verdict"]                      # doctest: +SKIP
    'AGREE'
    """
    cfg = cfg or ClaimsConfig()
    for name in ("seeds", "epochs"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(cfg, name)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    digits = D.load_digits()
    x_inv = digits.x_test[:cfg.n_invariance] if cfg.n_invariance else digits.x_test
    runs: dict[str, list] = {p: [] for p in cfg.pools}
    first_models = {}
    total = cfg.seeds * len(cfg.pools)
    done = 0
    for seed in range(cfg.seeds):
        log(f"seed {seed}: preparing shifted, rotated and scaled copies of {len(x_inv)} test images")
        probe = _make_probe(x_inv, seed, cfg, log)
        for pool in cfg.pools:
            done += 1
            label = f"[{done}/{total}] {pool:<7} seed {seed}"
            model = make_lenet(pool, rng=np.random.default_rng(seed))
            hist = fit(model, digits.x_train, digits.y_train, digits.x_test, digits.y_test,
                       TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed),
                       Progress(label, every_epoch=False, stream=_LogStream(log)))
            log(f"{label}: test acc {hist.test_accuracy[-1]:.4f}  train acc {hist.train_accuracy[-1]:.4f}  "
                f"({hist.seconds:.1f} s); measuring invariance")
            inv = _invariance(model, probe)
            runs[pool].append({"seed": seed, "test_accuracy": hist.test_accuracy[-1],
                               "train_accuracy": hist.train_accuracy[-1],
                               "epoch_train_seconds": float(np.median(hist.train_seconds)),
                               "seconds": hist.seconds, "history": hist.as_dict(), "invariance": inv})
            c = inv["consistency"]
            log(f"{label}: consistency under shifts {c['shift']:.3f}, rotations {c['rotation']:.3f}, "
                f"scalings {c['scale']:.3f}")
            if seed == 0:
                first_models[pool] = model
    log("measuring compute, memory and receptive fields")
    costs = {p: compute_cost(make_lenet(p, rng=np.random.default_rng(0))) for p in cfg.pools}
    rfs = {p: _receptive_fields(first_models[p], cfg.rf_probes, 0) for p in cfg.pools}
    log("claim 6: variable-length text with masked max pooling")
    task = D.make_motif_task(n_train=cfg.text_train, n_test=cfg.text_test, seed=0)
    text_runs = [_text_run(cfg, seed, task, log) for seed in range(cfg.seeds)]
    results = _assemble(cfg, runs, costs, rfs, text_runs, time.monotonic() - start)
    scatter = text_runs[0].pop("_scatter")
    for r in text_runs[1:]:
        r.pop("_scatter")
    log("drawing claims.png")
    _plot(results, scatter, out / "claims.png")
    log("writing claims.json and claims.md")
    results["seconds_total"] = time.monotonic() - start
    (out / "claims.json").write_text(json.dumps(results, indent=1, default=_json_default) + "\n")
    (out / "claims.md").write_text(_markdown(results))
    return results


class _LogStream:
    def __init__(self, log):
        self.log = log

    def write(self, text):
        text = text.rstrip("\n")
        if text:
            self.log(text)

    def flush(self):
        pass


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


# ---------------------------------------------------------------------------------------------
# assembling the numbers and the verdicts
# ---------------------------------------------------------------------------------------------


def _assemble(cfg, runs, costs, rfs, text_runs, seconds) -> dict:
    pools = list(cfg.pools)
    per = {}
    for p in pools:
        rs = runs[p]
        test = [r["test_accuracy"] for r in rs]
        train = [r["train_accuracy"] for r in rs]
        gap = [a - b for a, b in zip(train, test)]
        inv_c = {k: [r["invariance"]["consistency"][k] for r in rs] for k in ("shift", "rotation", "scale")}
        curves = {}
        for k in ("shift", "rotation", "scale"):
            vals = rs[0]["invariance"]["cosine"][k]["values"]
            cos = np.array([r["invariance"]["cosine"][k]["cosine"] for r in rs])
            curves[k] = {"values": vals, "mean": cos.mean(axis=0).tolist(),
                         "std": (cos.std(axis=0, ddof=1) if len(rs) > 1 else np.zeros(cos.shape[1])).tolist()}
        per[p] = {
            "test_accuracy": test, "train_accuracy": train, "gap": gap,
            "test_accuracy_mean_std": _ms(test), "train_accuracy_mean_std": _ms(train), "gap_mean_std": _ms(gap),
            "seconds_per_epoch": float(np.median([r["epoch_train_seconds"] for r in rs])),
            "consistency": inv_c, "consistency_mean_std": {k: _ms(v) for k, v in inv_c.items()},
            "cosine": curves, "cost": costs[p],
            "histories": [r["history"] for r in rs],
        }
    verdicts = {}
    ref, base = ("max", "none")
    have = ref in per and base in per
    # 1. accuracy
    if have:
        c = compare(per[ref]["test_accuracy"], per[base]["test_accuracy"])
        verdicts["accuracy"] = dict(c, verdict={"higher": "SUPPORTED", "lower": "CONTRADICTED"}.get(
            c["relation"], "INCONCLUSIVE"))
        c = compare(per[ref]["gap"], per[base]["gap"])
        verdicts["overfitting"] = dict(c, verdict={"lower": "SUPPORTED", "higher": "CONTRADICTED"}.get(
            c["relation"], "INCONCLUSIVE"))
        ratios = {k: per[base]["cost"][k] / per[ref]["cost"][k]
                  for k in ("multiply_adds", "activation_bytes", "parameters")}
        ratios["seconds_per_epoch"] = per[base]["seconds_per_epoch"] / per[ref]["seconds_per_epoch"]
        smaller = [k for k in ("multiply_adds", "activation_bytes", "seconds_per_epoch") if ratios[k] > 1]
        verdicts["compute"] = {"none_over_max": ratios, "smaller_with_max": smaller,
                               "verdict": "SUPPORTED" if len(smaller) == 3 else
                               ("PARTLY SUPPORTED" if smaller else "CONTRADICTED")}
        inv = {}
        # feature similarity at a shift of max_shift pixels, per seed
        at = per[ref]["cosine"]["shift"]["values"].index(min(cfg.max_shift, cfg.curve_shift))
        cos_at = {p: [r["invariance"]["cosine"]["shift"]["cosine"][at] for r in runs[p]] for p in pools}
        c0 = compare(cos_at[ref], cos_at[base])
        inv["features_max_vs_none"] = dict(c0, verdict={"higher": "SUPPORTED", "lower": "CONTRADICTED"}.get(
            c0["relation"], "INCONCLUSIVE"), shift=cfg.max_shift)
        if "maxblur" in per:
            c0 = compare(cos_at["maxblur"], cos_at[ref])
            inv["features_maxblur_vs_max"] = dict(c0, verdict={"higher": "SUPPORTED", "lower": "CONTRADICTED"}.get(
                c0["relation"], "INCONCLUSIVE"), shift=cfg.max_shift)
        for kind in ("shift", "rotation", "scale"):
            c1 = compare(per[ref]["consistency"][kind], per[base]["consistency"][kind])
            inv[f"max_vs_none_{kind}"] = dict(c1, verdict={"higher": "SUPPORTED", "lower": "CONTRADICTED"}.get(
                c1["relation"], "INCONCLUSIVE"))
            if "maxblur" in per:
                c2 = compare(per["maxblur"]["consistency"][kind], per[ref]["consistency"][kind])
                inv[f"maxblur_vs_max_{kind}"] = dict(c2, verdict={"higher": "SUPPORTED", "lower": "CONTRADICTED"}.get(
                    c2["relation"], "INCONCLUSIVE"))
        verdicts["invariance"] = inv
    n_layers = sum(len(v) for v in rfs.values())
    n_agree = sum(r["agree"] for v in rfs.values() for r in v)
    verdicts["receptive_field"] = {"layers": n_layers, "agree": n_agree,
                                   "verdict": "AGREE" if n_agree == n_layers else "DISAGREE",
                                   "disagreements": [f"{p} layer {r['layer']} ({r['name']})" for p, v in rfs.items()
                                                     for r in v if not r["agree"]]}
    text_acc = [r["test_accuracy"] for r in text_runs]
    fixed = all(r["pooled_length_shortest"] == r["pooled_length_longest"] for r in text_runs)
    exact_pred = all(r["masked_prediction_mismatches"] == 0 for r in text_runs)
    bitwise = all(r["masked_bitwise_equal"] for r in text_runs)
    verdicts["text"] = {"fixed_length": fixed, "same_predictions": exact_pred, "bitwise_equal_logits": bitwise,
                        "max_abs_logit_difference": max(r["masked_max_abs_logit_difference"] for r in text_runs),
                        "verdict": "SUPPORTED" if fixed and exact_pred else "CONTRADICTED",
                        "test_accuracy_mean_std": _ms(text_acc)}
    best = max(pools, key=lambda p: per[p]["test_accuracy_mean_std"][0])
    return {
        "config": asdict(cfg), "seconds": seconds, "pools": pools, "per_pool": per,
        "receptive_fields": rfs, "text": text_runs, "verdicts": verdicts, "best_test_accuracy": best,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__},
    }


# ---------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------


def _fmt_rel(c: dict, digits: int = 4) -> str:
    return f"difference {c['difference']:+.{digits}f}, standard error {c['standard_error']:.{digits}f}: {c['relation']}"


def _table(heads: list[str], rows, aligns: list[str] | None = None) -> list[str]:
    """The lines of a Markdown table (``rows``: lists of cells), then a blank line."""
    def line(cells) -> str:
        return "| " + " | ".join(cells) + " |"
    return [line(heads), line(aligns or ["---"] * len(heads)), *(line(r) for r in rows), ""]


def _markdown(res: dict) -> str:
    cfg, per, v, pools = res["config"], res["per_pool"], res["verdicts"], res["pools"]
    n = cfg["seeds"]
    L: list[str] = []
    add = L.append
    add("# Claims about pooling, measured")
    add("")
    add(f"Generated by `poolkit lab claims` ({'--quick, ' if cfg['quick'] else ''}{n} seed{'s' if n > 1 else ''}, "
        f"{cfg['epochs']} epochs each) in {res['seconds_total'] / 60:.1f} minutes on {res['machine']['cpus']} CPU "
        "cores. "
        "Every number below comes from that run and every verdict is computed from the numbers.")
    add("")
    add("**Data.** scikit-learn's bundled hand-written digits (1,797 real 8x8 images), bilinearly upscaled to "
        "16x16 and zero-padded to 20x20; test set `train_test_split(test_size=0.25, random_state=0, stratify=y)` "
        "(1,347 training and 450 test images).")
    add("")
    add("**Network.** `Conv2d(1, 8, 3, padding=1) - ReLU - DOWN - Conv2d(8, 16, 3, padding=1) - ReLU - DOWN - "
        "Flatten - Linear`, where DOWN is the pooling choice: `max` MaxPool2d(2), `avg` AvgPool2d(2), `lp` "
        "LPPool2d(2, 2), `maxblur` MaxBlurPool2d (max with stride 1, then a 4-tap binomial blur with stride 2, "
        "reflect padding: Zhang 2019), `stride` Conv2d(c, c, 3, stride=2, padding=1) + ReLU (learned downsampling), "
        f"`none` no downsampling. Adam (lr {cfg['lr']}, cosine decay), batch {cfg['batch_size']}, cross-entropy; "
        "weights seeded per run.")
    add("")
    add("**Verdicts.** A difference between two means over seeds counts only when it exceeds twice its standard "
        "error; otherwise it is *within noise*." + (" With one seed there is no noise estimate: every difference "
                                                    "counts, so treat the verdicts as indicative." if n == 1 else ""))
    add("")
    add("![accuracy, gap, compute, invariance, receptive fields and text, one panel each](claims.png)")
    add("")
    # 1
    add("## 1. Accuracy")
    add("")
    add("*Claim: pooling raises test accuracy -- the network with max pooling is more accurate than the same "
        "network without downsampling.*")
    add("")
    L += _table(["pooling", "test accuracy", "train accuracy"],
                ([p, _pm(per[p]["test_accuracy"]), _pm(per[p]["train_accuracy"])] for p in pools))
    if "accuracy" in v:
        add(f"**Verdict: {v['accuracy']['verdict']}.** max vs none: {_fmt_rel(v['accuracy'])}. "
            f"Highest mean test accuracy: {res['best_test_accuracy']}.")
    add("")
    # 2
    add("## 2. Over-fitting")
    add("")
    add("*Claim: pooling reduces over-fitting -- the train - test accuracy gap is smaller with max pooling "
        "than without downsampling.*")
    add("")
    L += _table(["pooling", "train - test gap"], ([p, _pm(per[p]["gap"])] for p in pools))
    if "overfitting" in v:
        add(f"**Verdict: {v['overfitting']['verdict']}.** max vs none: {_fmt_rel(v['overfitting'])}.")
    add("")
    # 3
    add("## 3. Compute and memory")
    add("")
    add("*Claim: pooling cuts compute and memory -- fewer multiply-adds, less activation memory and less time "
        "per epoch than without downsampling.*")
    add("")
    cost = {p: per[p]["cost"] for p in pools}
    L += _table(["pooling", "parameters", "multiply-adds / image", "pooling window reads / image",
                 "activation memory / image", "seconds / epoch (training)"],
                ([p, f"{c['parameters']:,}", f"{c['multiply_adds']:,}", f"{c['pool_reads']:,}",
                  f"{c['activation_bytes'] / 1024:.1f} KiB", f"{per[p]['seconds_per_epoch']:.3f}"]
                 for p, c in cost.items()),
                ["---"] + ["---:"] * 5)
    add("Multiply-adds count convolutions, linear layers and the fixed blur filter (as a depthwise convolution); "
        "pooling's comparisons and additions are the window reads. Activation memory: float32 outputs of every "
        "layer for one image. Seconds per epoch: median over epochs and seeds of the mini-batch updates "
        f"({1347} images), on a shared machine.")
    add("")
    if "compute" in v:
        r = v["compute"]["none_over_max"]
        add(f"**Verdict: {v['compute']['verdict']}.** Without downsampling the network needs "
            f"{r['multiply_adds']:.2f}x the multiply-adds, {r['activation_bytes']:.2f}x the activation memory, "
            f"{r['seconds_per_epoch']:.2f}x the time per epoch and {r['parameters']:.2f}x the parameters of the "
            "max-pooling network.")
    add("")
    # 4
    add("## 4. Translation invariance (and rotations, scalings)")
    add("")
    add(f"*Claims: (a) pooling makes the network more invariant to small shifts than no downsampling; (b) "
        f"max pooling alone is not shift-invariant and anti-aliasing (MaxBlurPool) makes it more so (Zhang 2019).* "
        f"Consistency: how often two random shifts of one test image, each up to ±{cfg['max_shift']} pixels per "
        f"axis, get the same class (Zhang 2019); likewise two random rotations in ±{cfg['max_angle']:g}° and two "
        f"scalings in [{1 - cfg['max_scale']:g}, {1 + cfg['max_scale']:g}].")
    add("")
    consistency = {p: per[p]["consistency"] for p in pools}
    L += _table(["pooling", "shift consistency", "rotation consistency", "scale consistency"],
                ([p, _pm(c["shift"]), _pm(c["rotation"]), _pm(c["scale"])] for p, c in consistency.items()))
    shifts = per[pools[0]]["cosine"]["shift"]["values"]
    add("Cosine similarity between the pooled feature maps (the input of Flatten) of an image and of its copy "
        "shifted by s pixels (mean over test images and seeds):")
    add("")
    L += _table(["pooling"] + [f"s = {s}" for s in shifts],
                ([p] + [f"{m:.3f}" for m in per[p]["cosine"]["shift"]["mean"]] for p in pools))
    for kind, unit in (("rotation", "°"), ("scale", "x")):
        vals = per[pools[0]]["cosine"][kind]["values"]
        add(f"Against the {kind}:")
        add("")
        heads = [f"{x:+g}{unit}" if kind == "rotation" else f"{x:.3g}{unit}" for x in vals]
        L += _table(["pooling"] + heads, ([p] + [f"{m:.3f}" for m in per[p]["cosine"][kind]["mean"]] for p in pools))
    if "invariance" in v:
        inv = v["invariance"]
        add(f"**Verdict (a): {inv['max_vs_none_shift']['verdict']}** for shifts: max vs none consistency, "
            f"{_fmt_rel(inv['max_vs_none_shift'])}. Rotations: {inv['max_vs_none_rotation']['verdict']} "
            f"({inv['max_vs_none_rotation']['relation']}); scalings: {inv['max_vs_none_scale']['verdict']} "
            f"({inv['max_vs_none_scale']['relation']}). Pooled features at a {cfg['max_shift']}-pixel shift: "
            f"{inv['features_max_vs_none']['verdict']} (cosine similarity, "
            f"{_fmt_rel(inv['features_max_vs_none'], 3)}).")
        add("")
        if "maxblur_vs_max_shift" in inv:
            add(f"**Verdict (b): {inv['maxblur_vs_max_shift']['verdict']}** for shifts: maxblur vs max consistency, "
                f"{_fmt_rel(inv['maxblur_vs_max_shift'])}. Rotations: {inv['maxblur_vs_max_rotation']['verdict']} "
                f"({inv['maxblur_vs_max_rotation']['relation']}); scalings: {inv['maxblur_vs_max_scale']['verdict']} "
                f"({inv['maxblur_vs_max_scale']['relation']}). Pooled features at a {cfg['max_shift']}-pixel "
                f"shift: {inv['features_maxblur_vs_max']['verdict']} (cosine similarity, "
                f"{_fmt_rel(inv['features_maxblur_vs_max'], 3)}).")
        add("")
    # 5
    rf = res["receptive_fields"]
    add("## 5. Receptive field per layer")
    add("")
    add("*Claim: the receptive field of a unit after layers with kernels k_l, strides s_l and paddings p_l is "
        "r = 1 + Σ_l (k_l - 1) Π_{i<l} s_i pixels wide, starting at u Π_l s_l - Σ_l p_l Π_{i<l} s_i "
        "(Araujo et al. 2019, Distill; dilation d enters as k' = d(k - 1) + 1).* Measured: the non-zero region of "
        "the input gradient of one unit (channel 0, centre of the map), united over "
        f"{cfg['rf_probes']} random positive inputs, in a copy of the trained network whose weights are made "
        "positive (|w|) and biases zero, so that no ReLU is off and no sum cancels. Closed form and measurement "
        "agree when the region is exactly the closed-form square (clipped to the 20x20 image).")
    add("")
    rows = []
    for p in pools:
        cells = []
        for r in rf[p]:
            if r["name"] == "ReLU":
                continue
            ok = "" if r["agree"] else " **≠**"
            clip = "*" if r["clipped_by_image"] else ""
            h, w = r["measured_size"]
            cells.append(f"{r['name']} {r['closed_form_size']}{clip} / {h}x{w}{ok}")
        rows.append([p, ", ".join(cells)])
    L += _table(["pooling", "layer: closed form / measured (rows x cols)"], rows)
    add("\\* the closed-form square reaches past the image; the measurement sees its part inside the image.")
    add("")
    vr = v["receptive_field"]
    add(f"**Verdict: {vr['verdict']}** at {vr['agree']} of {vr['layers']} layers (ReLUs included)"
        + (f"; disagreements: {', '.join(vr['disagreements'])}." if vr["disagreements"] else "."))
    add("")
    # 6
    t = res["text"]
    vt = v["text"]
    t0 = t[0]
    add("## 6. Fixed-length output for variable-length text")
    add("")
    add("*Claim: masked max pooling turns sequences of any length into a fixed-length vector, and a padded batch "
        "gives exactly the predictions of each sequence on its own.* Task, generated in code: token sequences "
        f"(vocabulary {40}) whose class is which of four orderings of the same three tokens was planted in them "
        f"(order matters, so a bag of words cannot solve it); training lengths {t0['train_length_range'][0]}-"
        f"{t0['train_length_range'][1]}, test lengths {t0['shortest']}-{t0['longest']} "
        f"({cfg['text_train']} training and {cfg['text_test']} test sequences). "
        "Model: `Embedding(40, 16, padding_idx=0) - "
        "Conv1d(16, 32, 3, padding=1) - ReLU - MaskedPool1d('max') - Linear(32, 4)`, Adam lr 0.01, "
        f"{cfg['text_epochs']} epochs.")
    add("")
    L += _table(["seed", "test accuracy", "on lengths seen in training", "on longer sequences",
                 "pooled length (shortest / longest)", "padded batch vs one at a time: max abs logit difference",
                 "prediction mismatches", "without the mask: mismatches / max abs difference / accuracy"],
                ([str(r["seed"]), f"{r['test_accuracy']:.4f}", _opt(r["test_accuracy_seen_lengths"]),
                  _opt(r["test_accuracy_longer_than_training"]),
                  f"{r['pooled_length_shortest']} / {r['pooled_length_longest']}",
                  f"{r['masked_max_abs_logit_difference']:.3g}"
                  + (" (bitwise equal)" if r["masked_bitwise_equal"] else ""),
                  f"{r['masked_prediction_mismatches']} of {r['n_test']}",
                  f"{r['unmasked_prediction_mismatches']} / {r['unmasked_max_abs_logit_difference']:.3g} / "
                  f"{r['unmasked_test_accuracy']:.4f}"] for r in t))
    add(f"**Verdict: {vt['verdict']}.** Test accuracy {_pm([r['test_accuracy'] for r in t])}; the pooled vector has "
        f"{t0['pooled_length_shortest']} values for every length; a padded batch gives "
        + ("the same predictions as one sequence at a time" if vt["same_predictions"] else "DIFFERENT predictions")
        + (", with bitwise-equal logits" if vt["bitwise_equal_logits"] else
           f" (largest logit difference {vt['max_abs_logit_difference']:.3g}, float32 rounding of differently "
           "shaped matrix products)")
        + ". Pooling over the padded length without the mask lets padding leak in (last column).")
    add("")
    return "\n".join(L)


def _opt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


# ---------------------------------------------------------------------------------------------
# the figure
# ---------------------------------------------------------------------------------------------

_COLORS = {"max": "#1f77b4", "avg": "#ff7f0e", "lp": "#2ca02c", "maxblur": "#d62728", "stride": "#9467bd",
           "none": "#7f7f7f"}


def _clipped(row: dict, image_size: int = 20) -> int:
    """Side of the closed-form receptive field inside the image (the larger of rows and cols)."""
    sizes = []
    for a, b in (row["closed_form_rows"], row["closed_form_cols"]):
        sizes.append(max(0, min(b, image_size - 1) - max(a, 0) + 1))
    return max(sizes)


def _plot(res: dict, scatter, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    per, pools = res["per_pool"], res["pools"]
    fig = Figure(figsize=(16, 13.5), layout="constrained")
    FigureCanvasAgg(fig)
    axs = fig.subplots(3, 3)
    colors = [_COLORS.get(p, "k") for p in pools]
    xs = np.arange(len(pools))
    # 1 accuracy
    ax = axs[0, 0]
    m = [per[p]["test_accuracy_mean_std"][0] for p in pools]
    s = [per[p]["test_accuracy_mean_std"][1] for p in pools]
    ax.bar(xs, m, yerr=s, color=colors, capsize=4)
    ax.plot(xs, [per[p]["train_accuracy_mean_std"][0] for p in pools], "k_", markersize=22, mew=2, label="train")
    lo = min(min(m) - 2 * max(s + [0.005]), 0.99)
    ax.set_ylim(max(lo, 0.0), 1.004)
    ax.set_xticks(xs, pools)
    ax.set_title("1. Test accuracy (mean ± std over seeds)")
    ax.legend(loc="lower right")
    # 2 gap
    ax = axs[0, 1]
    ax.bar(xs, [per[p]["gap_mean_std"][0] for p in pools], yerr=[per[p]["gap_mean_std"][1] for p in pools],
           color=colors, capsize=4)
    ax.set_xticks(xs, pools)
    ax.set_title("2. Over-fitting: train − test accuracy")
    ax.axhline(0, color="k", lw=0.8)
    # 3 compute, relative to the max-pooling network
    ax = axs[0, 2]
    refp = "max" if "max" in per else pools[0]
    keys = [("parameters", "parameters"), ("multiply_adds", "multiply-adds"),
            ("activation_bytes", "activation memory"), ("seconds_per_epoch", "seconds per epoch")]
    width = 0.2
    for j, (k, name) in enumerate(keys):
        get = (lambda p, k=k: per[p][k]) if k == "seconds_per_epoch" else (lambda p, k=k: per[p]["cost"][k])
        ax.bar(xs + (j - 1.5) * width, [get(p) / get(refp) for p in pools], width, label=name)
    ax.set_yscale("log")
    ax.axhline(1, color="k", lw=0.8)
    ax.set_xticks(xs, pools)
    ax.set_ylabel(f"relative to {refp} pooling (log scale)")
    ax.set_title("3. Compute and memory per image")
    ax.legend(fontsize=8, loc="upper left")
    # 4 cosine curves
    for ax, kind, xlabel in ((axs[1, 0], "shift", "shift (pixels)"), (axs[1, 1], "rotation", "rotation (degrees)"),
                             (axs[1, 2], "scale", "scale factor")):
        for p in pools:
            c = per[p]["cosine"][kind]
            ax.errorbar(c["values"], c["mean"], yerr=c["std"], marker="o", ms=4, capsize=2, label=p,
                        color=_COLORS.get(p))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("cosine similarity of pooled features")
        ax.set_title(f"4. Feature similarity against the {kind}")
        ax.grid(alpha=0.3)
    axs[1, 0].legend(fontsize=9)
    # 4 consistency
    ax = axs[2, 0]
    for j, kind in enumerate(("shift", "rotation", "scale")):
        ax.bar(xs + (j - 1) * 0.27, [per[p]["consistency_mean_std"][kind][0] for p in pools], 0.27,
               yerr=[per[p]["consistency_mean_std"][kind][1] for p in pools], capsize=2, label=kind)
    allc = [per[p]["consistency_mean_std"][k][0] for p in pools for k in ("shift", "rotation", "scale")]
    ax.set_ylim(max(0.0, min(allc) - 0.05), 1.08)
    ax.set_xticks(xs, pools)
    ax.set_title("4. Consistency: two random transforms, same class?")
    ax.legend(fontsize=8, loc="upper center", ncol=3)
    # 5 receptive fields
    ax = axs[2, 1]
    for p in pools:
        rows = [r for r in res["receptive_fields"][p] if r["name"] != "ReLU"]
        d = np.arange(1, len(rows) + 1)
        ax.plot(d, [_clipped(r) for r in rows], "-", color=_COLORS.get(p), label=f"{p} closed form")
        ax.plot(d, [max(r["measured_size"]) for r in rows], "o", color=_COLORS.get(p), mfc="none", ms=8)
    ax.axhline(20, color="k", ls=":", lw=0.8)
    ax.text(1, 20.3, "image size", fontsize=8)
    ax.set_xlabel("layer (convolutions and pooling, in order)")
    ax.set_ylabel("receptive field (pixels)")
    ax.set_title("5. Receptive field: closed form (lines, clipped to the image)\nvs measured (circles)", fontsize=11)
    ax.legend(fontsize=8, ncol=2, loc="lower right")
    ax.grid(alpha=0.3)
    # 6 text: per sequence, the largest logit difference between a padded batch and the sequence alone
    ax = axs[2, 2]
    lengths, masked, unmasked = (np.asarray(a, dtype=np.float64) for a in scatter)
    floor = 1e-9
    ax.semilogy(lengths, np.maximum(unmasked, floor), ".", ms=4, color="#ff7f0e",
                label="the same model pooled without the mask")
    ax.semilogy(lengths, np.maximum(masked, floor), ".", ms=4, color="#1f77b4", label="masked max pooling")
    ax.axhline(floor, color="k", lw=0.6, ls=":")
    ax.text(lengths.max(), floor * 1.6, "exactly 0", ha="right", fontsize=8)
    ax.set_ylim(floor / 3, max(10.0, float(unmasked.max()) * 3))
    ax.set_xlabel("sequence length (tokens)")
    ax.set_ylabel("max |logit in padded batch − logit alone|")
    ax.set_title("6. Variable-length text: padded batch vs one at a time")
    ax.legend(fontsize=9, loc="upper right")
    fig.savefig(path, dpi=80)
