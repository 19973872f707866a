"""The cases of the suite: what poolkit computes, on which input, against which peers, to which target.

A case is a frozen ``Spec``; its arrays and its contenders are made only when the case runs
(``benchmarks.peers``), so that at most one case's arrays are alive at a time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: poolkit's time over the copy floor for the call's bytes, by family (the issue's targets).
FLOOR_TARGETS = {"forward": 1.2, "backward": 2.0, "global": 1.5}

#: the pooled axes of each layout
SPATIAL = {"NCL": (2,), "NCHW": (2, 3), "NHWC": (1, 2), "NCDHW": (2, 3, 4)}

ALL_PEERS = ("torch", "onnxruntime", "opencv", "scipy", "jax", "numpy")


@dataclass(frozen=True)
class Spec:
    name: str
    op: str  # "max" or "avg"
    kind: str  # "pool", "indices" (max_pool with return_indices=True), "global", "adaptive" or "backward"
    shape: tuple[int, ...]  # poolkit's input, in `layout`
    layout: str  # a key of SPATIAL
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    pad: tuple[int, ...] = ()  # symmetric, per pooled axis
    dtype: str = "float32"
    peers: tuple[str, ...] = ()
    output_size: tuple[int, ...] = ()  # adaptive pooling
    family: str = "forward"  # "forward", "backward", "global" or "tiny": which targets apply
    note: str = ""  # why this case is here, when it is not in the list

    @property
    def spatial(self) -> tuple[int, ...]:
        return SPATIAL[self.layout]

    @property
    def floor_target(self) -> float | None:
        return FLOOR_TARGETS.get(self.family)

    @property
    def taps(self) -> int:
        """Input cells reduced into one output (the n of the float tolerance)."""
        if self.kind == "global":
            return math.prod(self.shape[a] for a in self.spatial)
        if self.kind == "adaptive":
            return math.prod(self.shape[a] // o for a, o in zip(self.spatial, self.output_size))
        return math.prod(self.kernel)

    @property
    def overlap(self) -> int:
        """How many windows can share one input cell (the n of a backward's tolerance)."""
        return math.prod(-(-k // s) for k, s in zip(self.kernel, self.stride))

    def out_sizes(self) -> tuple[int, ...]:
        """Output size of each pooled axis."""
        if self.kind == "adaptive":
            return self.output_size
        if self.kind == "global":
            return tuple(1 for _ in self.spatial)
        return tuple((self.shape[a] + 2 * p - k) // s + 1
                     for a, k, s, p in zip(self.spatial, self.kernel, self.stride, self.pad))

    def scaled(self, factor: int) -> Spec:
        """The same case on a batch `factor` times smaller (for --quick smoke runs)."""
        n = max(1, self.shape[0] // factor)
        return Spec(**{**self.__dict__, "shape": (n, *self.shape[1:]),
                       "name": self.name.replace(_shape_text(self.shape), _shape_text((n, *self.shape[1:])))})


def _shape_text(shape) -> str:
    return "(" + ",".join(str(n) for n in shape) + ")"


def _geometry(kernel, stride, pad) -> str:
    text = "x".join(str(k) for k in kernel) + " s" + "x".join(str(s) for s in dict.fromkeys(stride))
    return text + (" p" + "x".join(str(p) for p in dict.fromkeys(pad)) if any(pad) else "")


def _pool(op, shape, layout, k, s, p, dtype="float32", peers=ALL_PEERS, family="forward", prefix="", note=""):
    nd = len(SPATIAL[layout])
    kernel, stride, pad = (k,) * nd, (s,) * nd, (p,) * nd
    name = f"{prefix}{op} {_geometry(kernel, stride, pad)} {layout} {_shape_text(shape)} {dtype}"
    return Spec(name, op, "pool", shape, layout, kernel, stride, pad, dtype, tuple(peers), family=family, note=note)


def _nhwc(shape):
    n, c, h, w = shape
    return (n, h, w, c)


def all_specs() -> list[Spec]:
    specs = []
    main = [((32, 64, 112, 112), 3, 2, 1), ((32, 128, 56, 56), 2, 2, 0)]
    # the main forward cases, float32 first, then the same in float16 and uint8
    for dtype in ("float32", "float16", "uint8"):
        for shape, k, s, p in main:
            for op in ("max", "avg"):
                specs.append(_pool(op, shape, "NCHW", k, s, p, dtype))
                specs.append(_pool(op, _nhwc(shape), "NHWC", k, s, p, dtype))
    # 1-D long sequences
    for op in ("max", "avg"):
        specs.append(_pool(op, (8, 64, 65536), "NCL", 4, 4, 0,
                           peers=("torch", "onnxruntime", "opencv", "scipy", "jax", "numpy")))
    # global average pooling, both layouts
    for layout, shape in (("NCHW", (32, 512, 7, 7)), ("NHWC", (32, 7, 7, 512))):
        specs.append(Spec(f"global avg {layout} {_shape_text(shape)} float32", "avg", "global", shape, layout,
                          peers=("torch", "onnxruntime", "opencv", "jax", "numpy"), family="global"))
    # adaptive average pooling 14x14 -> 7x7
    shape = (32, 512, 14, 14)
    specs.append(Spec(f"adaptive avg to 7x7 NCHW {_shape_text(shape)} float32", "avg", "adaptive", shape, "NCHW",
                      peers=("torch", "onnxruntime", "opencv", "jax", "numpy"), output_size=(7, 7)))
    # call overhead
    for op in ("max", "avg"):
        specs.append(_pool(op, (1, 1, 6, 6), "NCHW", 2, 2, 0, peers=("torch", "onnxruntime", "opencv", "numpy"),
                           family="tiny", prefix="tiny "))
    # backward: torch's aten backward ops, and JAX's vjp
    for shape, k, s, p in main:
        for op in ("max", "avg"):
            sp = _pool(op, shape, "NCHW", k, s, p, peers=("torch", "jax"), family="backward")
            specs.append(Spec(**{**sp.__dict__, "kind": "backward",
                                 "name": sp.name.replace(f"{op} ", f"{op} backward ", 1)}))
    # the max with the flat index of each maximum (what unpooling and the max backward take)
    shape = main[0][0]
    for layout, sh in (("NCHW", shape), ("NHWC", _nhwc(shape))):
        sp = _pool("max", sh, layout, 3, 2, 1, peers=("torch",),
                   note="added with the max_indices rework: torch is the peer that returns the same indices")
        specs.append(Spec(**{**sp.__dict__, "kind": "indices", "name": sp.name.replace("max ", "max+indices ", 1)}))
    # wide windows and 3-D volumes
    for op in ("max", "avg"):
        specs.append(_pool(op, (4, 16, 256, 256), "NCHW", 9, 1, 4, peers=("torch", "jax", "opencv", "scipy"),
                           note="OpenCV and scipy.ndimage added: stride 1 is their native operation"))
    for op in ("max", "avg"):
        specs.append(_pool(op, (2, 16, 64, 64, 64), "NCDHW", 3, 2, 1, peers=("torch", "jax", "onnxruntime", "scipy"),
                           note="onnxruntime and scipy.ndimage added: both pool 3-D"))
    return specs


def select(specs: list[Spec], pattern: str) -> list[Spec]:
    """Cases whose name contains any of the comma-separated parts of `pattern` (case-insensitive;
    a comma inside brackets, as in a shape, does not separate parts)."""
    parts = [p.strip().lower() for p in re.split(r",(?![^()]*\))", pattern) if p.strip()]
    if not parts:
        return specs
    return [s for s in specs if any(p in s.name.lower() for p in parts)]
