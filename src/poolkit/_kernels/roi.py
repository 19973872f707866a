"""Kernels of ROI pooling: ROI max pooling (torchvision ``roi_pool`` / ONNX ``MaxRoiPool``
geometry) and ROI align (ONNX ``RoiAlign``).

No validation here: :mod:`poolkit.roi` checks every argument and computes every index and weight
table, and the kernels trust them.  All arrays are C-contiguous.  No fastmath flag is used, so NaN
comparisons stay exact and no multiply-add is fused (ROI align reproduces ONNX Runtime's float32
arithmetic operation by operation).  Each kernel takes a chunk of independent work (ROIs or
channels, see :mod:`poolkit._engine`); ROIs of one image never race because backward kernels split
the channels, not the ROIs.
"""

import numpy as np
from numba import njit

# --------------------------------------------------------------------------------------------
# ROI max pooling (torchvision roi_pool / ONNX MaxRoiPool geometry)
# --------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def roi_pool_forward(x, batch, hstart, hend, wstart, wend, out, arg, t0, t1):
    """out[k, c, ph, pw] = max of x[batch[k], c] over rows [hstart[k, ph], hend[k, ph]) and
    columns [wstart[k, pw], wend[k, pw]); arg = flat h * W + w of the first maximum (NaN wins),
    -1 and a zero output for an empty bin.  Bounds are already clipped to the map.  Work items
    t = k * C + c in [t0, t1)."""
    n_rois, n_chan, n_ph, n_pw = out.shape
    width = x.shape[3]
    for t in range(t0, t1):
        k = t // n_chan
        c = t - k * n_chan
        b = batch[k]
        for ph in range(n_ph):
            h0 = hstart[k, ph]
            h1 = hend[k, ph]
            for pw in range(n_pw):
                w0 = wstart[k, pw]
                w1 = wend[k, pw]
                if h1 <= h0 or w1 <= w0:
                    out[k, c, ph, pw] = 0
                    arg[k, c, ph, pw] = -1
                    continue
                best = x[b, c, h0, w0]
                best_i = h0 * width + w0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        v = x[b, c, h, w]
                        if v > best or (v != v and best == best):
                            best = v
                            best_i = h * width + w
                out[k, c, ph, pw] = best
                arg[k, c, ph, pw] = best_i


@njit(cache=True, nogil=True)
def roi_pool_backward(g, batch, arg, gx, c0, c1):
    """gx[batch[k], c] at arg[k, c, ph, pw] += g[k, c, ph, pw] for the channels c0 <= c < c1 (gx
    zero-filled here)."""
    n_rois, n_chan, n_ph, n_pw = g.shape
    width = gx.shape[3]
    for c in range(c0, c1):
        gx[:, c, :, :] = 0.0
        for k in range(n_rois):
            b = batch[k]
            for ph in range(n_ph):
                for pw in range(n_pw):
                    a = arg[k, c, ph, pw]
                    if a >= 0:
                        h = a // width
                        gx[b, c, h, a - h * width] += g[k, c, ph, pw]


# --------------------------------------------------------------------------------------------
# ROI align (ONNX RoiAlign): separable sample tables per ROI and axis
# --------------------------------------------------------------------------------------------
#
# For ROI k, output row ph and sample iy < ny[k]: ylo/yhi are the two rows, ly/hy their bilinear
# weights (hy for ylo), yok whether the sample lies in [-1, H] (else all four weights are 0 and the
# positions 0, as ONNX Runtime does).  The same for columns.  Weights are in the compute dtype.


@njit(inline="always")
def _precalc(k, width, ny, ylo, yhi, ly, hy, yok, nx, xlo, xhi, lx, hx, xok, n_ph, n_pw, pos, wts):
    """ONNX Runtime's PreCalc for ROI k: the four flat positions and weights of every sample, in
    the order bin (ph, pw), sample row iy, sample column ix.  Out-of-range samples get weight 0 at
    position 0."""
    q = 0
    for ph in range(n_ph):
        for pw in range(n_pw):
            for iy in range(ny[k]):
                for ix in range(nx[k]):
                    if yok[k, ph, iy] and xok[k, pw, ix]:
                        y0 = ylo[k, ph, iy]
                        y1 = yhi[k, ph, iy]
                        x0 = xlo[k, pw, ix]
                        x1 = xhi[k, pw, ix]
                        pos[q, 0] = y0 * width + x0
                        pos[q, 1] = y0 * width + x1
                        pos[q, 2] = y1 * width + x0
                        pos[q, 3] = y1 * width + x1
                        wts[q, 0] = hy[k, ph, iy] * hx[k, pw, ix]
                        wts[q, 1] = hy[k, ph, iy] * lx[k, pw, ix]
                        wts[q, 2] = ly[k, ph, iy] * hx[k, pw, ix]
                        wts[q, 3] = ly[k, ph, iy] * lx[k, pw, ix]
                    else:
                        for j in range(4):
                            pos[q, j] = 0
                            wts[q, j] = 0
                    q += 1


@njit(inline="always")
def _weighted_max(plane, pos, wts, q):
    """max(w1 * v1, w2 * v2, w3 * v3, w4 * v4) as chained std::max (a later term wins only if
    greater), and which corner won."""
    val = wts[q, 0] * plane[pos[q, 0]]
    j = 0
    for jj in range(1, 4):
        v = wts[q, jj] * plane[pos[q, jj]]
        if val < v:
            val = v
            j = jj
    return val, j


@njit(cache=True, nogil=True)
def roi_align_forward(x, width, batch, ny, ylo, yhi, ly, hy, yok, nx, xlo, xhi, lx, hx, xok, count, is_max,
                      zero, out, k0, k1):
    """ONNX RoiAlign on x of shape (N, C, H * W): the average of the bilinear samples of each bin
    (the sum divided by count[k]), or in max mode the maximum over samples of the maximum of the
    four weighted corner values.  Comparisons follow std::max.  ROIs k0 <= k < k1."""
    n_rois, n_chan, n_ph, n_pw = out.shape
    z = zero[0]
    for k in range(k0, k1):
        ns = ny[k] * nx[k]
        pos = np.empty((n_ph * n_pw * ns, 4), dtype=np.int64)
        wts = np.empty((n_ph * n_pw * ns, 4), dtype=zero.dtype)
        _precalc(k, width, ny, ylo, yhi, ly, hy, yok, nx, xlo, xhi, lx, hx, xok, n_ph, n_pw, pos, wts)
        b = batch[k]
        for c in range(n_chan):
            plane = x[b, c]
            q = 0
            for ph in range(n_ph):
                for pw in range(n_pw):
                    acc = z
                    if is_max:
                        for s in range(ns):
                            val, _ = _weighted_max(plane, pos, wts, q)
                            if s == 0 or acc < val:
                                acc = val
                            q += 1
                        out[k, c, ph, pw] = acc
                    else:
                        for _ in range(ns):
                            acc += (wts[q, 0] * plane[pos[q, 0]] + wts[q, 1] * plane[pos[q, 1]]
                                    + wts[q, 2] * plane[pos[q, 2]] + wts[q, 3] * plane[pos[q, 3]])
                            q += 1
                        out[k, c, ph, pw] = acc / count[k]


@njit(cache=True, nogil=True)
def roi_align_backward(g, x, width, batch, ny, ylo, yhi, ly, hy, yok, nx, xlo, xhi, lx, hx, xok, count,
                       is_max, zero, gx, c0, c1):
    """Adjoint of roi_align_forward into float64 gx of shape (N, C, H * W), zero-filled here, for
    the channels c0 <= c < c1.

    Average: every corner receives weight * g / count.  Max: the winning weighted corner (the
    first maximum in the forward's order) receives weight * g.  Each chunk of channels walks all
    ROIs in order and computes a ROI's sample table once.
    """
    n_rois, n_chan, n_ph, n_pw = g.shape
    max_ns = 0
    for k in range(n_rois):
        max_ns = max(max_ns, ny[k] * nx[k])
    gx[:, c0:c1, :] = 0.0
    pos = np.empty((n_ph * n_pw * max_ns, 4), dtype=np.int64)
    wts = np.empty((n_ph * n_pw * max_ns, 4), dtype=zero.dtype)
    for k in range(n_rois):
        ns = ny[k] * nx[k]
        _precalc(k, width, ny, ylo, yhi, ly, hy, yok, nx, xlo, xhi, lx, hx, xok, n_ph, n_pw, pos, wts)
        b = batch[k]
        for c in range(c0, c1):
            plane = x[b, c]
            gplane = gx[b, c]
            q = 0
            for ph in range(n_ph):
                for pw in range(n_pw):
                    go = g[k, c, ph, pw]
                    if is_max:
                        best = zero[0]
                        best_p = -1
                        best_w = zero[0]
                        for s in range(ns):
                            val, j = _weighted_max(plane, pos, wts, q)
                            if s == 0 or best < val:
                                best = val
                                best_p = pos[q, j]
                                best_w = wts[q, j]
                            q += 1
                        if best_p >= 0:
                            gplane[best_p] += best_w * go
                    else:
                        go = go / count[k]
                        for _ in range(ns):
                            for j in range(4):
                                gplane[pos[q, j]] += wts[q, j] * go
                            q += 1
