"""The sliding-window animation: a pooling window walking over a small matrix, the current window
highlighted and the output (and, for the backward, the input's gradient) filling in."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..explain import Explanation, describe_gradient, format_number, format_position
from .figure import _new_figure
from .images import _shape_str

__all__ = ["animation_figure", "save_pool_gif", "MAX_GIF_FRAMES"]

#: More windows than this make an unreadable animation.
MAX_GIF_FRAMES = 400


def _size_label(shape) -> str:
    return f"of length {shape[0]}" if len(shape) == 1 else _shape_str(shape)


_WINDOW = "#ffe082"  # amber: the current window
_WINNER = "#ff8a65"  # orange: the cell that wins a max / takes the gradient
_EDGE = "#e65100"
_DONE = "#bbdefb"  # pale blue: output cells already computed
_PAD = "#eeeeee"


class _PoolAnimation:
    """One Figure redrawn for each window: input grid (with padding), output grid, gradient grid."""

    def __init__(self, ex: Explanation):
        from matplotlib.patches import Rectangle

        self._Rectangle = Rectangle
        self.ex = ex
        x = ex.x if ex.x.ndim == 2 else ex.x.reshape(1, -1)
        self.x2 = x
        self.two_d = ex.x.ndim == 2
        out = ex.output if self.two_d else ex.output.reshape(1, -1)
        self.out2 = out
        pads = ex.pads if self.two_d else ((0, 0),) + ex.pads
        # the drawn input grid: padding plus any ceil-mode overhang
        lo = [-pads[a][0] for a in range(2)]
        hi = [x.shape[a] + pads[a][1] for a in range(2)]
        for w in ex.windows:
            for c in w.cells:
                c2 = self._c2(c)
                hi = [max(hi[a], c2[a] + 1) for a in range(2)]
        self.lo, self.hi = lo, hi
        self.pads = pads
        in_rows, in_cols = hi[0] - lo[0], hi[1] - lo[1]
        panels = [(in_rows, in_cols), out.shape] + ([x.shape] if ex.backward else [])
        total_cols = sum(c for _, c in panels)
        max_rows = max(r for r, _ in panels)
        cell = min(0.6, 10.0 / total_cols, 6.0 / max_rows)
        gap, margin, top, bottom = 0.9, 0.35, 0.95, 0.75
        width = max(2 * margin + cell * total_cols + gap * (len(panels) - 1), 7.0)
        height = top + bottom + cell * max_rows
        self.fig = fig = _new_figure((width, height))
        left = (width - (cell * total_cols + gap * (len(panels) - 1))) / 2
        self.axes = []
        for r, c in panels:
            y0 = bottom + (max_rows - r) * cell / 2
            ax = fig.add_axes((left / width, y0 / height, c * cell / width, r * cell / height))
            ax.set_axis_off()
            self.axes.append(ax)
            left += c * cell + gap
        for ax_a, ax_b in zip(self.axes, self.axes[1:]):
            b0, b1 = ax_a.get_position(), ax_b.get_position()
            fig.text((b0.x1 + b1.x0) / 2, (b0.y0 + b0.y1) / 2, "→", ha="center", va="center", fontsize=22,
                     color="#616161")
        labels = [format_number(v, 4) for v in ex.output.ravel()] + [format_number(v, 4) for v in x.ravel()]
        if ex.grad_input is not None:
            labels += [format_number(v, 4) for v in ex.grad_input.ravel()]
        longest = max([len(t) for t in labels] + [2])
        self.fs = max(5.0, min(14.0, cell * 72 * 0.85 / (0.62 * longest)))
        self.cell_in = cell
        self._build()
        self.transient: list = []

    def _c2(self, c):
        return tuple(c) if self.two_d else (0,) + tuple(c)

    def _grid(self, ax, rows, cols, r0=0, c0=0):
        ax.set_xlim(c0 - 0.5, c0 + cols - 0.5)
        ax.set_ylim(r0 + rows - 0.5, r0 - 0.5)
        patches, texts = {}, {}
        for r in range(r0, r0 + rows):
            for c in range(c0, c0 + cols):
                rect = self._Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="white", edgecolor="#9e9e9e", lw=1)
                ax.add_patch(rect)
                patches[(r, c)] = rect
                texts[(r, c)] = ax.text(c, r, "", ha="center", va="center", fontsize=self.fs)
        return patches, texts

    def _build(self):
        ex, x = self.ex, self.x2
        ax_in, ax_out = self.axes[0], self.axes[1]
        op = ex.operation.label(ex.p)
        kd = f"kernel {_shape_str(ex.kernel_size)}, stride {_shape_str(ex.stride)}"
        if any(v != 1 for v in ex.dilation):
            kd += f", dilation {_shape_str(ex.dilation)}"
        if any(v for pair in ex.pads for v in pair):
            kd += ", padding " + " ".join(f"({a}, {b})" for a, b in ex.pads)
        if ex.ceil_mode:
            kd += ", ceil mode"
        self.heading = f"{op}: {kd}"
        rows, cols = self.hi[0] - self.lo[0], self.hi[1] - self.lo[1]
        self.in_patches, in_texts = self._grid(ax_in, rows, cols, self.lo[0], self.lo[1])
        pad_label = ex.operation.pad_label
        for (r, c), rect in self.in_patches.items():
            t = in_texts[(r, c)]
            if 0 <= r < x.shape[0] and 0 <= c < x.shape[1]:
                t.set_text(format_number(x[r, c], 4))
            elif r < x.shape[0] + self.pads[0][1] and c < x.shape[1] + self.pads[1][1]:
                rect.set_facecolor(_PAD)
                t.set_text(pad_label)
                t.set_color("#9e9e9e")
                t.set_fontstyle("italic")
            else:
                rect.set_facecolor("white")
                rect.set_hatch("///")
                rect.set_edgecolor("#bdbdbd")
        self.in_base = {key: rect.get_facecolor() for key, rect in self.in_patches.items()}
        ax_in.add_patch(self._Rectangle((-0.5, -0.5), x.shape[1], x.shape[0], fill=False, edgecolor="black", lw=2))
        padded = any(v for pr in ex.pads for v in pr)
        ax_in.set_title(f"input {_size_label(ex.x.shape)}" + (" (grey: padding)" if padded else ""), fontsize=11)
        self.out_patches, self.out_texts = self._grid(ax_out, *self.out2.shape)
        ax_out.add_patch(self._Rectangle((-0.5, -0.5), self.out2.shape[1], self.out2.shape[0], fill=False,
                                         edgecolor="black", lw=2))
        ax_out.set_title(f"output {_size_label(ex.output.shape)} ({ex.operation.function})", fontsize=11)
        if ex.backward:
            ax_g = self.axes[2]
            self.g_patches, self.g_texts = self._grid(ax_g, *x.shape)
            ax_g.add_patch(self._Rectangle((-0.5, -0.5), x.shape[1], x.shape[0], fill=False, edgecolor="black", lw=2))
            ax_g.set_title(f"gradient of the input {_size_label(ex.x.shape)}", fontsize=11)
        self.title = self.fig.text(0.5, 1 - 0.3 / self.fig.get_figheight(), "", ha="center", va="center",
                                   fontsize=13, weight="bold")
        self.caption = self.fig.text(0.5, 0.42 / self.fig.get_figheight(), "", ha="center", va="center",
                                     fontsize=11, wrap=True)
        self.caption2 = self.fig.text(0.5, 0.16 / self.fig.get_figheight(), "", ha="center", va="center",
                                      fontsize=10, color="#424242")

    def update(self, step: int):
        ex = self.ex
        for a in self.transient:
            a.remove()
        self.transient = []
        w = ex.windows[step]
        for key, rect in self.in_patches.items():
            rect.set_facecolor(self.in_base[key])
        ax_in = self.axes[0]
        for c in w.cells:
            r2, c2 = self._c2(c)
            winner = w.argmax is not None and tuple(c) == w.argmax
            self.in_patches[(r2, c2)].set_facecolor(_WINNER if winner else _WINDOW)
            hl = self._Rectangle((c2 - 0.5, r2 - 0.5), 1, 1, fill=False, edgecolor=_EDGE, lw=2.5, zorder=5,
                                 clip_on=False)
            ax_in.add_patch(hl)
            self.transient.append(hl)
        # the output so far
        for i, win in enumerate(ex.windows):
            key = self._c2(win.index)
            rect, text = self.out_patches[key], self.out_texts[key]
            if i < step:
                rect.set_facecolor(_DONE)
                text.set_text(format_number(win.result, 4))
            elif i == step:
                rect.set_facecolor(_WINDOW)
                text.set_text(format_number(win.result, 4))
            else:
                rect.set_facecolor("white")
                text.set_text("")
        r, c = self._c2(w.index)
        hl = self._Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor=_EDGE, lw=2.5, zorder=5,
                                 clip_on=False)
        self.axes[1].add_patch(hl)
        self.transient.append(hl)
        last = step == len(ex.windows) - 1
        if ex.backward:
            if last:
                acc = np.asarray(ex.grad_input, dtype=np.float64).reshape(self.x2.shape)
            else:
                acc = np.zeros(self.x2.shape)
                for win in ex.windows[: step + 1]:
                    for cell, amount in win.grad_to:
                        acc[self._c2(cell)] += amount
            touched = {self._c2(cell) for cell, _ in w.grad_to}
            for key, rect in self.g_patches.items():
                rect.set_facecolor(_WINNER if key in touched else "white")
                v = acc[key]
                self.g_texts[key].set_text(format_number(v, 4))
                self.g_texts[key].set_color("black" if v != 0 else "#bdbdbd")
        n = len(ex.windows)
        self.title.set_text(f"{self.heading} — window {step + 1} of {n}")
        self.caption.set_text(f"window {format_position(w.index)}: {w.formula}")
        self.caption2.set_text(describe_gradient(ex, w) if ex.backward else "")
        return self.fig

    def frame(self, step: int):
        from PIL import Image

        self.update(step)
        self.fig.canvas.draw()
        rgba = np.asarray(self.fig.canvas.buffer_rgba())
        return Image.fromarray(np.ascontiguousarray(rgba[..., :3]))


def animation_figure(ex: Explanation, step: int = -1):
    """The animation's frame for window ``step`` (default: the last) as a matplotlib Figure.

    Its axes are, left to right: the input (padding in grey, the window in amber, a max's
    winner in orange), the output filled in up to this window, and -- with ``backward`` -- the
    input's gradient accumulated so far (the engine's gradient on the last frame).
    """
    anim = _PoolAnimation(ex)
    n = len(ex.windows)
    if not -n <= step < n:
        raise IndexError(f"step must be in [{-n}, {n}), got {step}")
    return anim.update(step % n)


def _indexed_frames(frames):
    """RGB frames as palette images sharing one palette, each pixel mapped to its nearest entry.

    The palette is a median cut of (up to 8 of) the frames, with the flat colours of the drawing
    snapped to their exact values; the mapping is exact nearest-colour (pillow's own palette
    lookup is approximate and turns white into light grey).
    """
    from PIL import Image

    sample = np.concatenate(frames[:8], axis=0)
    cut = Image.fromarray(sample).quantize(colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    entries = np.array(cut.getpalette()[: 3 * 255], dtype=np.int64).reshape(-1, 3)
    for hex_colour in ("#ffffff", "#000000", _WINDOW, _WINNER, _DONE, _PAD, _EDGE):
        rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
        entries[np.argmin(((entries - rgb) ** 2).sum(axis=1))] = rgb
    flat_palette = entries.astype(np.uint8).ravel().tolist()
    out = []
    for f in frames:
        codes = (f[..., 0].astype(np.int64) << 16) | (f[..., 1].astype(np.int64) << 8) | f[..., 2]
        uniq, inverse = np.unique(codes, return_inverse=True)
        rgb = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], axis=1)
        nearest = np.empty(len(uniq), dtype=np.uint8)
        for lo in range(0, len(uniq), 4096):
            d = ((rgb[lo:lo + 4096, None, :] - entries[None, :, :]) ** 2).sum(axis=2)
            nearest[lo:lo + 4096] = np.argmin(d, axis=1)
        idx = np.ascontiguousarray(nearest[inverse.reshape(codes.shape)])
        im = Image.frombytes("P", (idx.shape[1], idx.shape[0]), idx.tobytes())
        im.putpalette(flat_palette)
        out.append(im)
    return out


def save_pool_gif(ex: Explanation, path, *, duration_ms: int = 1000, last_ms: int = 2500, dpi: int = 100) -> int:
    """Write the sliding-window animation of ``ex`` as an animated GIF, one frame per window.

    Parameters
    ----------
    ex : Explanation
        From :func:`explain_pooling`.
    path : str or path-like
        The GIF to write.
    duration_ms, last_ms : int, optional
        How long each frame, and the last one, is shown.
    dpi : int, optional
        Resolution.

    Returns
    -------
    n_frames : int
        The number of frames written (= the number of windows).
    """
    n = len(ex.windows)
    if n > MAX_GIF_FRAMES:
        raise ValueError(f"the animation would have {n} frames (one per window), more than {MAX_GIF_FRAMES}; "
                         "use a smaller matrix or a larger stride")
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise OSError(f"directory {str(path.parent)!r} does not exist")

    anim = _PoolAnimation(ex)
    anim.fig.set_dpi(dpi)
    frames = [np.asarray(anim.frame(i)) for i in range(n)]
    indexed = _indexed_frames(frames)
    durations = [duration_ms] * (n - 1) + [last_ms]
    indexed[0].save(path, format="GIF", save_all=True, append_images=indexed[1:], duration=durations, loop=0,
                    disposal=1, optimize=False)
    return n
