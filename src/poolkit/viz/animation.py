"""The sliding-window animation: a pooling window walking over a small matrix, the current window
highlighted and the output (and, for the backward, the input's gradient) filling in."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..explanation import Explanation, describe_gradient, format_number, format_position
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


class _FastFrames:
    """The animation's frames drawn straight into palette images, for :func:`save_pool_gif`.

    matplotlib draws the static parts once (grids, numbers of the input, titles, arrows); each
    frame then repaints only the cells that change -- a cell's fill, its number, the window's
    edge -- and the captions, with pillow, in the same font.  Every piece is mapped once to one
    shared palette (exact nearest colour), and a frame keeps only the pixels that changed
    (the rest are the transparent index), so the GIF stays small.
    """

    TRANSPARENT = 255

    def __init__(self, anim: _PoolAnimation, dpi: int):
        from matplotlib import font_manager
        from PIL import ImageFont

        self.anim = anim
        ex = anim.ex
        fig = anim.fig
        fig.set_dpi(dpi)
        # the static picture: every grid in its resting state, no captions
        for key, rect in anim.in_patches.items():
            rect.set_facecolor(anim.in_base[key])
        for key, rect in anim.out_patches.items():
            rect.set_facecolor("white")
            anim.out_texts[key].set_text("")
        if ex.backward:
            for key, rect in anim.g_patches.items():
                rect.set_facecolor("white")
                anim.g_texts[key].set_text("")
        for t in (anim.title, anim.caption, anim.caption2):
            t.set_text("")
        fig.canvas.draw()
        self.base = np.ascontiguousarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])
        self.height, self.width = self.base.shape[:2]
        self.scale = dpi / 72.0
        regular = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))
        bold = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans", weight="bold"))
        italic = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans", style="italic"))
        self._fonts: dict = {}
        self._font_files = {"regular": regular, "bold": bold, "italic": italic}
        self._ImageFont = ImageFont
        # pixel boxes of the cells (inside their grid lines)
        self.boxes = {}
        grids = [("in", anim.axes[0], anim.in_patches), ("out", anim.axes[1], anim.out_patches)]
        if ex.backward:
            grids.append(("g", anim.axes[2], anim.g_patches))
        for name, ax, patches in grids:
            for (r, c) in patches:
                (x0, y0), (x1, y1) = ax.transData.transform([(c - 0.5, r - 0.5), (c + 0.5, r + 0.5)])
                left, right = sorted((x0, x1))
                top, bottom = sorted((self.height - y0, self.height - y1))
                self.boxes[(name, r, c)] = (int(round(left)) + 2, int(round(top)) + 2,
                                            int(round(right)) - 1, int(round(bottom)) - 1)
        self.text_px = anim.fs * self.scale
        self._text_y = {id(t): self.height - t.get_position()[1] * self.height
                        for t in (anim.title, anim.caption, anim.caption2)}

    def font(self, kind: str, px: float):
        key = (kind, int(round(px)))
        if key not in self._fonts:
            self._fonts[key] = self._ImageFont.truetype(self._font_files[kind], max(6, key[1]))
        return self._fonts[key]

    # -- the states of the cells ------------------------------------------------------------------

    def resting(self) -> dict:
        """The state of every cell in the static picture: (fill, text, text colour, kind, edge)."""
        anim, ex = self.anim, self.anim.ex
        x = anim.x2
        states: dict = {}
        pad_label = ex.operation.pad_label
        for (r, c) in anim.in_patches:
            fill = _hex(anim.in_base[(r, c)])
            if 0 <= r < x.shape[0] and 0 <= c < x.shape[1]:
                states[("in", r, c)] = (fill, format_number(x[r, c], 4), "#000000", "regular", False)
            elif r < x.shape[0] + anim.pads[0][1] and c < x.shape[1] + anim.pads[1][1]:
                states[("in", r, c)] = (fill, pad_label, "#9e9e9e", "italic", False)
            else:
                states[("in", r, c)] = None  # hatched: the static picture's own pixels
        for (r, c) in anim.out_patches:
            states[("out", r, c)] = ("#ffffff", "", "#000000", "regular", False)
        if ex.backward:
            for (r, c) in anim.g_patches:
                states[("g", r, c)] = ("#ffffff", "", "#000000", "regular", False)
        return states

    def states(self, step: int, rest: dict) -> dict:
        anim, ex = self.anim, self.anim.ex
        w = ex.windows[step]
        st = dict(rest)
        for c in w.cells:
            key = ("in",) + anim._c2(c)
            winner = w.argmax is not None and tuple(c) == w.argmax
            old = rest[key]
            text, colour, kind = (old[1], old[2], old[3]) if old is not None else ("", "#000000", "regular")
            st[key] = (_WINNER if winner else _WINDOW, text, colour, "bold" if winner else kind, True)
        for i, win in enumerate(ex.windows):
            key = ("out",) + anim._c2(win.index)
            if i < step:
                st[key] = (_DONE, format_number(win.result, 4), "#000000", "regular", False)
            elif i == step:
                st[key] = (_WINDOW, format_number(win.result, 4), "#000000", "regular", True)
        if ex.backward:
            if step == len(ex.windows) - 1:
                acc = np.asarray(ex.grad_input, dtype=np.float64).reshape(anim.x2.shape)
            else:
                acc = self._acc[step]
            touched = {anim._c2(cell) for cell, _ in w.grad_to}
            for (r, c) in anim.g_patches:
                v = acc[r, c]
                st[("g", r, c)] = (_WINNER if (r, c) in touched else "#ffffff", format_number(v, 4),
                                   "#000000" if v != 0 else "#bdbdbd", "regular", False)
        return st

    def accumulate(self):
        """The input's gradient after each window (running sums of the windows' shares)."""
        anim, ex = self.anim, self.anim.ex
        acc = np.zeros(anim.x2.shape)
        self._acc = []
        for win in ex.windows:
            for cell, amount in win.grad_to:
                acc[anim._c2(cell)] += amount
            self._acc.append(acc.copy())

    # -- drawing -----------------------------------------------------------------------------------

    def cell_image(self, key, state) -> np.ndarray:
        from PIL import Image, ImageDraw

        x0, y0, x1, y1 = self.boxes[key]
        w, h = max(1, x1 - x0), max(1, y1 - y0)
        if state is None:
            return self.base[y0:y0 + h, x0:x0 + w].copy()
        fill, text, colour, kind, edge = state
        im = Image.new("RGB", (w, h), fill)
        d = ImageDraw.Draw(im)
        if edge:
            lw = max(2, int(round(2.5 * self.scale / 1.39)))
            d.rectangle((0, 0, w - 1, h - 1), outline=_EDGE, width=lw)
        if text:
            d.text((w / 2, h / 2), text, fill=colour, font=self.font(kind, self.text_px), anchor="mm")
        return np.asarray(im)

    def caption_strip(self, which, text: str, px: float, colour: str, kind: str):
        """``text`` centred across the picture at the height of matplotlib's text ``which``."""
        from PIL import Image, ImageDraw

        font = self.font(kind, px)
        while font.getlength(text) > self.width - 20 and px > 7:
            px *= 0.9
            font = self.font(kind, px)
        h = int(px * 1.6) + 4
        yc = self._text_y[id(which)]
        top = int(max(0, min(self.height - h, yc - h / 2)))
        im = Image.new("RGB", (self.width, h), "#ffffff")
        if text:
            ImageDraw.Draw(im).text((self.width / 2, yc - top), text, fill=colour, font=font, anchor="mm")
        return top, np.asarray(im)


def _hex(rgba) -> str:
    r, g, b = (int(round(v * 255)) for v in rgba[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


class _Palette:
    """One shared palette (254 colours at most, index 255 kept for transparency) and an exact
    nearest-colour mapping from RGB pieces to its indices, cached per colour."""

    def __init__(self, samples, flat_colours):
        from PIL import Image

        sample = np.concatenate([s.reshape(-1, 3) for s in samples], axis=0)
        side = int(math.ceil(math.sqrt(len(sample))))
        pad = np.full((side * side - len(sample), 3), 255, dtype=np.uint8)
        square = np.concatenate([sample, pad]).reshape(side, side, 3)
        cut = Image.fromarray(square).quantize(colors=254, method=Image.Quantize.MEDIANCUT,
                                               dither=Image.Dither.NONE)
        n = len(cut.getpalette()) // 3
        entries = np.array(cut.getpalette()[: 3 * min(n, 254)], dtype=np.int64).reshape(-1, 3)
        for hex_colour in flat_colours:
            rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
            if not (entries == rgb).all(axis=1).any():
                entries[np.argmin(((entries - rgb) ** 2).sum(axis=1))] = rgb
        self.entries = entries
        full = np.zeros((256, 3), dtype=np.uint8)
        full[: len(entries)] = entries
        self.flat = full.ravel().tolist()
        self.cache: dict[int, int] = {}

    def map(self, rgb: np.ndarray) -> np.ndarray:
        codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
        uniq, inverse = np.unique(codes, return_inverse=True)
        out = np.empty(len(uniq), dtype=np.uint8)
        todo = []
        for j, u in enumerate(uniq.tolist()):
            hit = self.cache.get(u)
            if hit is None:
                todo.append(j)
            else:
                out[j] = hit
        if todo:
            sel = uniq[todo]
            cols = np.stack([(sel >> 16) & 255, (sel >> 8) & 255, sel & 255], axis=1)
            for lo in range(0, len(sel), 4096):
                d = ((cols[lo:lo + 4096, None, :] - self.entries[None, :, :]) ** 2).sum(axis=2)
                near = np.argmin(d, axis=1).astype(np.uint8)
                out[np.asarray(todo[lo:lo + 4096])] = near
                self.cache.update(zip(sel[lo:lo + 4096].tolist(), near.tolist()))
        return out[inverse.reshape(codes.shape)]


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

    from PIL import GifImagePlugin, Image

    anim = _PoolAnimation(ex)
    fast = _FastFrames(anim, dpi)
    if ex.backward:
        fast.accumulate()
    rest = fast.resting()
    # pass 1: which cells change in each frame, and the picture of every cell state needed
    changes: list[list] = []
    current = dict(rest)
    sprites: dict = {}
    for i in range(n):
        st = fast.states(i, rest)
        frame_changes = []
        for key, state in st.items():
            if current.get(key) != state:
                sk = (fast.boxes[key], state) if state is not None else (key, None)
                if sk not in sprites:
                    sprites[sk] = fast.cell_image(key, state)
                x0, y0 = fast.boxes[key][:2]
                frame_changes.append((y0, x0, sk))
        current = st
        changes.append(frame_changes)
    caption_px = (13 * fast.scale, 11 * fast.scale, 10 * fast.scale)

    def strips(i):
        w = ex.windows[i]
        texts = (f"{anim.heading} — window {i + 1} of {n}", f"window {format_position(w.index)}: {w.formula}",
                 describe_gradient(ex, w) if ex.backward else "")
        for which, text, px, colour, kind in zip((anim.title, anim.caption, anim.caption2), texts, caption_px,
                                                 ("#000000", "#000000", "#424242"), ("bold", "regular", "regular")):
            yield fast.caption_strip(which, text, px, colour, kind)

    samples = [fast.base] + list(sprites.values())[:400] + [img for _, img in strips(0)]
    palette = _Palette(samples, ("#ffffff", "#000000", _WINDOW, _WINNER, _DONE, _PAD, _EDGE, "#9e9e9e",
                                 "#bdbdbd", "#424242", "#616161"))
    mapped = {sk: palette.map(img) for sk, img in sprites.items()}
    del sprites
    # pass 2: paint the changes on an indexed canvas; each frame is written as it is made, cropped
    # to the box of the pixels that changed, the unchanged ones in it transparent
    canvas = palette.map(fast.base)
    t = _FastFrames.TRANSPARENT
    durations = [duration_ms] * (n - 1) + [last_ms]
    with open(path, "wb") as f:
        for i in range(n):
            before = canvas.copy()
            for y, x, sk in changes[i]:
                idx = mapped[sk]
                canvas[y:y + idx.shape[0], x:x + idx.shape[1]] = idx
            for top, img in strips(i):
                canvas[top:top + img.shape[0], :] = palette.map(img)
            if i == 0:
                out, offset = canvas, (0, 0)
            else:
                changed = canvas != before
                rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
                if len(rows) == 0:  # nothing changed: one transparent pixel
                    rows, cols = np.array([0]), np.array([0])
                y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
                out = np.where(changed[y0:y1, x0:x1], canvas[y0:y1, x0:x1], np.uint8(t))
                offset = (int(x0), int(y0))
            frame = Image.frombytes("P", (out.shape[1], out.shape[0]), np.ascontiguousarray(out).tobytes())
            frame.putpalette(palette.flat)
            if i == 0:
                header, _ = GifImagePlugin.getheader(frame, info={"transparency": t, "loop": 0})
                f.write(b"".join(header))
            f.write(b"".join(GifImagePlugin.getdata(frame, offset, duration=durations[i], disposal=1,
                                                    transparency=t)))
        f.write(b";")  # the GIF trailer
    return n
