"""Row loops written as LLVM vectors: float64 sums of float32 runs (the global average of NCHW
and NHWC batches), and the rows of 2x2 stride-2 windows and of 3-wide stride-2 maxima.

A global average sums one run per (n, c) -- 49 elements for ResNet's 7x7 -- and a float32 input
summed in float64 widens every element; numba's loops left these sums well short of the speed of
one long float64 sum (28-32 us for all of a (32, 512, 7, 7) float32 array, one thread, here).

* :func:`sum_runs4`, channels first (each run contiguous): written as a plain loop, LLVM
  vectorises each run 32 elements wide and finishes it with a 4-wide loop and a scalar step
  (about 4.4 ns per 49-element run here).  Here each run is a loop of 8-lane vectors ending on one
  overlapping load whose already-counted lanes are zeroed, four runs in lockstep, and the four
  vectors are reduced together into the four sums, divided and stored as one vector (2.8 ns per
  run).
* :func:`sum_columns64`, channels last (each run strided, 64 channels side by side): the plain
  loop added three rows per pass into a float64 row buffer in memory; here 64 channels are summed
  over all the rows in eight vector registers and written once, the rows added in the same order
  as before, so the same bits.
* :data:`pair_sums`, :data:`pair_max`, :data:`half_pair_max`: the rows of 2x2 stride-2 windows
  from the window's two input rows -- float32 sums in float64 or float32, integer maxima, float16
  maxima -- and :data:`max_rows3` and :data:`max_taps3` the rows and the taps of the plane
  kernels' 3-wide stride-2 maxima of 1- and 2-byte integers and float16.  Each makes a whole row:
  a loop of vector calls of 8 to 32 outputs, the last overlapping the one before it
  (:func:`_walk`), each combining in the order of the plain loop it replaces, so the same bits.
  The loop is written in the intrinsic, not in numba: a row walker written in numba and inlined
  into the kernels was typed anew at each use, and made a first float16 3x3 max compile about
  1.1 s longer (3.86 s against 2.78 s now, farm-bench, 3 runs each, fresh caches).

Float32 sums and float64 inputs gained nothing from the vectors (measured for the channels-first
runs: the same time within 2%), so they keep the plain loops.  The division is the same IEEE
division of each sum, and the quotient is rounded once to the output's dtype, as the plain
loop's assignment does.  See BENCHMARKS.md for the figures.
"""

from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

_BIT = ir.IntType(1)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_RUNS = 4
_LANES = 8


def _splat(builder, value, n: int):
    """A vector of ``n`` copies of ``value``."""
    v = builder.insert_element(ir.Constant(ir.VectorType(value.type, n), None), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, n), [0] * n))


def _pick(builder, a, b, lanes: list[int]):
    """The lanes of the concatenation of ``a`` and ``b`` listed in ``lanes``."""
    return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, len(lanes)), lanes))


def _halves(width: int, groups: int) -> tuple[list[int], list[int]]:
    """The first and second halves of each of ``groups`` groups of ``width`` lanes."""
    h = width // 2
    return ([g * width + k for g in range(groups) for k in range(h)],
            [g * width + h + k for g in range(groups) for k in range(h)])


def _reduce(builder, vectors: list, lanes: int):
    """Vectors of ``lanes`` partial sums, one vector per run (a power of two, at most ``lanes``
    of them) -> one vector holding run r's sum in lane r.  Each step adds the halves of every
    group of partial sums: first of pairs of vectors (the result holds both vectors' groups),
    then within the last vector."""
    width = lanes
    while len(vectors) > 1:
        lo, hi = _halves(width, lanes // width)
        lo, hi = lo + [lanes + k for k in lo], hi + [lanes + k for k in hi]
        vectors = [builder.fadd(_pick(builder, a, b, lo), _pick(builder, a, b, hi))
                   for a, b in zip(vectors[0::2], vectors[1::2])]
        width //= 2
    v, n = vectors[0], lanes
    while width > 1:
        lo, hi = _halves(width, n // width)
        v = builder.fadd(_pick(builder, v, v, lo), _pick(builder, v, v, hi))
        n //= 2
        width //= 2
    return v


def _load_vector(builder, ptr, i, el, n: int, align: int):
    """The ``n`` elements of LLVM type ``el`` at ptr[i:] as one vector (``align``: the element's bytes)."""
    return builder.load(builder.bitcast(builder.gep(ptr, [i]), ir.VectorType(el, n).as_pointer()), align=align)


def _store_vector(builder, ptr, i, v, align: int):
    """Store the vector ``v`` at ptr[i:] (``align``: the element's bytes)."""
    builder.store(v, builder.bitcast(builder.gep(ptr, [i]), v.type.as_pointer()), align=align)


def _loader(builder, n: int = _LANES, wide=None):
    """load(ptr, i): the ``n`` float32 at ptr[i:], widened to ``wide`` (float64; float32 keeps them)."""
    wide = ir.DoubleType() if wide is None else wide

    def load(ptr, i):
        v = _load_vector(builder, ptr, i, ir.FloatType(), n, 4)
        return v if wide == ir.FloatType() else builder.fpext(v, ir.VectorType(wide, n))

    return load


def _accumulate(builder, name: str, start, stop, step, sums: list, addends) -> list:
    """The loop ``for i in range(start, stop, step): sums[k] += addends(i)[k]`` (unsigned ``i``,
    ``stop - start`` a multiple of ``step`` or ``start >= stop``) as LLVM blocks, built where the
    builder stands; the sums after it (the loop head's phis), the builder left after the loop."""
    entry = builder.block
    head = builder.append_basic_block(f"{name}.head")
    body = builder.append_basic_block(f"{name}.body")
    done = builder.append_basic_block(f"{name}.done")
    builder.branch(head)
    builder.position_at_end(head)
    i = builder.phi(_I64)
    phis = [builder.phi(s.type) for s in sums]
    i.add_incoming(start, entry)
    for phi, s in zip(phis, sums):
        phi.add_incoming(s, entry)
    builder.cbranch(builder.icmp_unsigned("<", i, stop), body, done)
    builder.position_at_end(body)
    added = [builder.fadd(phi, a) for phi, a in zip(phis, addends(i))]
    i.add_incoming(builder.add(i, step), body)
    for phi, a in zip(phis, added):
        phi.add_incoming(a, body)
    builder.branch(head)
    builder.position_at_end(done)
    return phis


def _store_means(context, builder, oty, out, at, sums, divisor):
    """out[at : at + lanes] = sums / divisor (a float64 vector), rounded once to out's dtype."""
    _store(context, builder, oty, out, at, builder.fdiv(sums, _splat(builder, divisor, sums.type.count)))


def _store(context, builder, oty, out, at, values):
    """out[at : at + lanes] = values (a float64 vector), rounded once to out's dtype."""
    n = values.type.count
    oel = context.get_value_type(oty.dtype)
    if oel != ir.DoubleType():
        values = builder.fptrunc(values, ir.VectorType(oel, n))
    _store_vector(builder, out.data, at, values, oty.dtype.bitwidth // 8)


def _typing(x, out, acc, args: tuple):
    """(signature, served) of an intrinsic taking ``args`` whose arrays are x, out and acc: it
    returns whether it wrote; it is served for float32 input summed in float64 into a float32 or
    float64 output.  None (numba tries no other) when x, out or acc is not an array."""
    if not all(isinstance(a, types.Array) for a in (x, out, acc)):
        return None
    f32, f64 = types.float32, types.float64
    return types.boolean(*args), x.dtype == f32 and acc.dtype == f64 and out.dtype in (f32, f64)


def _arrays(context, builder, signature, args, x_at: int, out_at: int):
    """The input and output array structures of an intrinsic's arguments, and the output's type."""
    oty = signature.args[out_at]
    xs = context.make_array(signature.args[x_at])(context, builder, args[x_at])
    return xs, context.make_array(oty)(context, builder, args[out_at]), oty


@intrinsic
def sum_runs4(typingctx, x, base, n, out, obase, divisor, acc):
    """Write ``(sum of x[base + r*n : base + (r+1)*n], in acc's dtype) / divisor`` into
    ``out[obase + r]`` for r < 4, and return True; or write nothing and return False when the
    runs are shorter than one vector (8 elements) or the dtypes are not served (see
    ``_typing``).  ``x`` and ``out`` are flat C-contiguous arrays, ``base``,
    ``n`` and ``obase`` uint64, ``divisor`` float64; ``acc`` only names the sums' dtype."""
    typed = _typing(x, out, acc, (x, base, n, out, obase, divisor, acc))
    if typed is None:
        return None
    sig, served = typed

    def codegen(context, builder, signature, args):
        if not served:
            return ir.Constant(_BIT, 0)
        xs, os_, oty = _arrays(context, builder, signature, args, 0, 3)
        base, n, obase, div = args[1], args[2], args[4], args[5]
        lanes = _LANES
        vacc = ir.VectorType(ir.DoubleType(), lanes)
        zero = ir.Constant(vacc, None)
        load = _loader(builder)

        long_enough = builder.icmp_unsigned(">=", n, ir.Constant(_I64, lanes))
        with builder.if_then(long_enough, likely=True):
            starts = [builder.gep(xs.data, [builder.add(base, builder.mul(n, ir.Constant(_I64, r)))])
                      for r in range(_RUNS)]
            full = builder.and_(n, ir.Constant(_I64, -lanes))  # the lanes of whole vectors
            sums = _accumulate(builder, "runs", ir.Constant(_I64, 0), full, ir.Constant(_I64, lanes),
                               [zero] * _RUNS, lambda i: [load(p, i) for p in starts])
            # the last vector of each run overlaps the loop's; lanes before `lanes - rest` are zeroed
            rest = builder.sub(n, full)
            new = builder.icmp_unsigned(">=", ir.Constant(ir.VectorType(_I64, lanes), list(range(lanes))),
                                        _splat(builder, builder.sub(ir.Constant(_I64, lanes), rest), lanes))
            last = builder.sub(n, ir.Constant(_I64, lanes))
            totals = _reduce(builder, [builder.fadd(s, builder.select(new, load(p, last), zero))
                                       for s, p in zip(sums, starts)], lanes)
            _store_means(context, builder, oty, os_, obase, totals, div)
        return long_enough

    return sig, codegen


_BLOCKS = 8  # vectors of channels summed at once: 4 left the adds waiting on each other, 16 spilled


@intrinsic
def sum_columns64(typingctx, x, base, rows, stride, out, obase, divisor, acc):
    """Write ``(sum over r < rows of x[base + r*stride + c], in acc's dtype) / divisor`` into
    ``out[obase + c]`` for the 64 channels c < 64, adding the rows in order (the first row is the
    start, as in the plain loop), and return True; or write nothing and return False when the
    dtypes are not served (see ``_typing``).  ``x`` and ``out`` are flat C-contiguous arrays,
    ``base``, ``rows`` (>= 1), ``stride`` and ``obase`` uint64, ``divisor`` float64."""
    typed = _typing(x, out, acc, (x, base, rows, stride, out, obase, divisor, acc))
    if typed is None:
        return None
    sig, served = typed

    def codegen(context, builder, signature, args):
        if not served:
            return ir.Constant(_BIT, 0)
        xs, os_, oty = _arrays(context, builder, signature, args, 0, 4)
        base, rows, stride, obase, div = args[1], args[2], args[3], args[5], args[6]
        load = _loader(builder)
        first = builder.gep(xs.data, [base])
        columns = [ir.Constant(_I64, _LANES * b) for b in range(_BLOCKS)]
        # the first row starts the sums; rows 1 <= r < rows are added in order
        one = ir.Constant(_I64, 1)

        def row(r):
            at = builder.mul(r, stride)
            return [load(first, builder.add(at, c)) for c in columns]

        sums = _accumulate(builder, "columns", one, rows, one, [load(first, c) for c in columns], row)
        for s, c in zip(sums, columns):
            _store_means(context, builder, oty, os_, builder.add(obase, c), s, div)
        return ir.Constant(_BIT, 1)

    return sig, codegen


def _max_comb(builder, dtype):
    """comb(b, v) of vectors of ``dtype`` (numba's; floats compared as float32 or float64 values):
    :func:`poolkit._kernels._loops.max_num`'s rule, the later tap ``v`` replacing the maximum so far
    ``b`` only when greater (floats: an ordered compare, ``maxps``; NaN is for the caller to rule
    out)."""
    if isinstance(dtype, types.Integer):
        greater = builder.icmp_signed if dtype.signed else builder.icmp_unsigned

        def comb(b, v):
            return builder.select(greater(">", v, b), v, b)
    else:
        def comb(b, v):
            return builder.select(builder.fcmp_ordered(">", v, b), v, b)
    return comb


def _vectors(context, builder, dtype, half: bool = False):
    """(load(ptr, i, n), put(ptr, i, v)) for elements of numba ``dtype``: the ``n`` elements at
    ptr[i:] as one vector, and the vector v stored at ptr[i:], aligned to the element.  With
    ``half`` (``dtype`` uint16 holding float16 bits) load gives the float16 values as float32 and
    put takes float32 values of float16 and stores their bits (both exact)."""
    el, align = context.get_value_type(dtype), dtype.bitwidth // 8

    def load(ptr, i, n):
        v = _load_vector(builder, ptr, i, el, n, align)
        if half:
            v = builder.fpext(builder.bitcast(v, ir.VectorType(ir.HalfType(), n)), ir.VectorType(ir.FloatType(), n))
        return v

    def put(ptr, i, v):
        n = v.type.count
        if half:
            v = builder.bitcast(builder.fptrunc(v, ir.VectorType(ir.HalfType(), n)), ir.VectorType(el, n))
        _store_vector(builder, ptr, i, v, align)

    return load, put


def _walk(builder, n: int, step: int, m, starts: list, d, chunk):
    """A row of ``m`` outputs (``m`` uint64) made by ``chunk(k, at, dq)`` as LLVM blocks, built where
    the builder stands: each call makes the k outputs ``out[dq : dq + k]`` from the inputs at the
    offsets ``at`` (``start + step * q`` for each of ``starts``; ``dq`` is ``d + q``) and returns
    whether it made them (an i1).  Rows of at least ``n`` outputs take ``n`` a call, the last call
    overlapping the one before it (its outputs written twice, with the same values); rows of
    ``n / 2`` to ``n - 1`` outputs take two calls of ``n / 2``, overlapping.  Returns whether the
    row was made (an i1; the builder is left after the row): False when it is shorter than
    ``n / 2`` (nothing written) or a call returned False (the row stops there)."""
    def const(v):
        return ir.Constant(_I64, v)

    def call(q, k):
        u = builder.mul(q, const(step))
        return chunk(k, [builder.add(r, u) for r in starts], builder.add(d, q))

    h = n // 2
    wide, loop, more, short, narrow, second, done = (builder.append_basic_block(f"row.{b}") for b in
                                                     ("wide", "loop", "more", "short", "narrow", "second", "done"))
    made = []  # the row's outcome from each block that ends it
    builder.cbranch(builder.icmp_unsigned(">=", m, const(n)), wide, short)
    builder.position_at_end(short)
    made.append((ir.Constant(_BIT, 0), short))
    builder.cbranch(builder.icmp_unsigned(">=", m, const(h)), narrow, done)
    builder.position_at_end(narrow)
    first = call(const(0), h)
    made.append((first, builder.block))
    builder.cbranch(builder.and_(first, builder.icmp_unsigned(">", m, const(h))), second, done)
    builder.position_at_end(second)
    made.append((call(builder.sub(m, const(h)), h), builder.block))
    builder.branch(done)
    builder.position_at_end(wide)
    last = builder.sub(m, const(n))
    builder.branch(loop)
    builder.position_at_end(loop)
    q = builder.phi(_I64)
    q.add_incoming(const(0), wide)
    each = call(q, n)
    made.append((each, builder.block))
    builder.cbranch(builder.and_(each, builder.icmp_unsigned("!=", q, last)), more, done)
    builder.position_at_end(more)
    after = builder.add(q, const(n))
    q.add_incoming(builder.select(builder.icmp_unsigned("<", after, last), after, last), more)
    builder.branch(loop)
    builder.position_at_end(done)
    row = builder.phi(_BIT)
    for value, block in made:
        row.add_incoming(value, block)
    return row


def _row_intrinsic(step: int, lanes, chunk):
    """The intrinsic ``row(x, r0, r1, r2, out, d, m, scale, acc)`` that makes the ``m`` outputs
    ``out[d : d + m]`` (``m``, ``d`` and the offsets uint64) of one row and returns whether it made
    them (:func:`_walk`, calls reading from ``r + step * q`` on).  ``lanes(x, out, acc)`` (numba's
    dtypes; ``acc`` the argument's type) gives the outputs of a wide call, 0 where the dtypes are
    not served: then the intrinsic is the constant False and compiles no code.
    ``chunk(context, builder, sig, xs, os_, scale)`` gives the codegen of a call,
    ``emit(k, at, dq)`` -> i1 (see :func:`_walk`).  Other argument types than 64-bit integer
    offsets and a float64 ``scale`` are a typing error (the LLVM code takes them as they are)."""

    @intrinsic
    def row(typingctx, x, r0, r1, r2, out, d, m, scale, acc):
        offsets = all(isinstance(a, types.Integer) and a.bitwidth == 64 for a in (r0, r1, r2, d, m))
        if not (all(isinstance(a, types.Array) for a in (x, out)) and offsets and scale == _F64):
            return None
        n = lanes(x.dtype, out.dtype, acc)

        def codegen(context, builder, signature, args):
            if not n:
                return ir.Constant(_BIT, 0)
            xs, os_, _ = _arrays(context, builder, signature, args, 0, 4)
            emit = chunk(context, builder, signature, xs, os_, args[7])
            return _walk(builder, n, step, args[6], list(args[1:4]), args[5], emit)

        return types.boolean(x, r0, r1, r2, out, d, m, scale, acc), codegen

    return row


_F32, _F64 = types.float32, types.float64


def _pair_lanes(kind: str):
    """``lanes`` of the pair rows (:func:`_row_intrinsic`) for ``kind`` "sums" (float32 input summed
    in float32 or float64, float32 or float64 output), "maxima" (integers) or "half" (float16
    bits)."""
    def lanes(x, out, acc):
        if kind == "sums":
            wide = acc.instance_type if isinstance(acc, types.NumberClass) else None
            return 8 if x == _F32 and wide in (_F32, _F64) and out in (_F32, _F64) else 0
        if kind == "maxima":
            return 16 if isinstance(x, types.Integer) and out == x else 0
        return 16 if x == out == types.uint16 else 0

    return lanes


def _pair_chunk(kind: str):
    """``chunk`` of the pair rows (:func:`_row_intrinsic`): k outputs of 2x2 stride-2 windows from
    the window's two input rows, the rows combined at each tap, then the taps (the plain loop's
    order)."""
    def chunk(context, builder, signature, xs, os_, scale):
        x, acc = signature.args[0].dtype, signature.args[8]

        def emit(k, at, dq):
            taps = 2 * k
            even, odd = list(range(0, taps, 2)), list(range(1, taps, 2))
            if kind == "sums":
                load = _loader(builder, taps, ir.DoubleType() if acc.instance_type == _F64 else ir.FloatType())
                rows = builder.fadd(load(xs.data, at[0]), load(xs.data, at[1]))
                sums = builder.fadd(_pick(builder, rows, rows, even), _pick(builder, rows, rows, odd))
                if acc.instance_type == _F32:  # the plain loop's float32 sum times the float64 scale
                    sums = builder.fpext(sums, ir.VectorType(ir.DoubleType(), k))
                _store(context, builder, signature.args[4], os_, dq, builder.fmul(sums, _splat(builder, scale, k)))
                return ir.Constant(_BIT, 1)
            half = kind == "half"
            load, put = _vectors(context, builder, x, half)
            a, b = load(xs.data, at[0], taps), load(xs.data, at[1], taps)
            made = ir.Constant(_BIT, 1)
            if half:  # not made if a tap is NaN
                nan = builder.bitcast(builder.fcmp_unordered("uno", a, b), ir.IntType(taps))
                made = builder.icmp_unsigned("==", nan, ir.Constant(ir.IntType(taps), 0))
            comb = _max_comb(builder, _F32 if half else x)
            rows = comb(a, b)
            put(os_.data, dq, comb(_pick(builder, rows, rows, even), _pick(builder, rows, rows, odd)))
            return made

        return emit

    return chunk


#: ``pair_sums(x, r0, r1, r2, out, d, m, scale, acc)`` (r2 unused): write ``((x[r0 + 2q] + x[r1 + 2q])
#: + (x[r0 + 2q + 1] + x[r1 + 2q + 1])) * scale``, summed in acc's dtype, into ``out[d + q]`` for
#: q < m, 8 outputs a call (4 for rows of 4 to 7), and return True; return False (nothing written)
#: when the row holds fewer than 4 outputs, or unless x is float32, acc float32 or float64 (a
#: dtype: the kernel's ``work.dtype.type``) and out float32 or float64.  The additions and the
#: product are those of the plain loop (:func:`poolkit._kernels.sliding._pairs_row`: a float32
#: sum times the float64 scale is a float64 product), so the same bits.  ``x`` and ``out`` flat
#: C-contiguous arrays, ``r0``, ``r1``, ``d``, ``m`` uint64, ``scale`` float64.
pair_sums = _row_intrinsic(2, _pair_lanes("sums"), _pair_chunk("sums"))
#: ``pair_max(x, r0, r1, r2, out, d, m, scale, acc)``: write the maximum of ``x[r0 + 2q]``,
#: ``x[r1 + 2q]``, ``x[r0 + 2q + 1]`` and ``x[r1 + 2q + 1]`` into ``out[d + q]`` for q < m, 16 a
#: call (8 for rows of 8 to 15), and return True; return False (nothing written) for rows of fewer
#: than 8, or unless x is an integer array and out of its dtype (``scale`` and ``acc`` unused).
#: Integers have no order rules: any order of the comparisons gives the same maximum.
pair_max = _row_intrinsic(2, _pair_lanes("maxima"), _pair_chunk("maxima"))
#: ``half_pair_max(x, r0, r1, r2, out, d, m, scale, acc)``: :data:`pair_max` for float16 bits
#: (``x`` and ``out`` uint16): the values' maxima by :func:`poolkit._kernels._loops.max_num` (the
#: first maximum wins: -0.0 before 0.0 stays -0.0), the two rows at each tap first, then the taps,
#: rounded back to float16 (exactly: each is one of the taps), so the bits of the float32 path
#: while no tap is NaN.  Returns False when a tap is NaN (the row stops at that call; what it
#: wrote is then to be made again by the NaN rules), the row is too short or the arrays are not
#: both uint16 (nothing written).
half_pair_max = _row_intrinsic(2, _pair_lanes("half"), _pair_chunk("half"))


def _max3_lanes(taps: bool):
    """``lanes`` of :data:`max_rows3` (``taps`` False) and :data:`max_taps3` (True): served for one
    dtype, an integer of 1 or 2 bytes or float32, or for float16 bits (uint16) read as float32
    values (the rows: uint16 -> float32) or float32 values stored as float16 bits (the taps:
    float32 -> uint16).  A call makes the outputs of 32 bytes of source rows (rows), or 16 (taps;
    8 for float32)."""
    def lanes(src, dst, acc):
        half = (src, dst) == ((_F32, types.uint16) if taps else (types.uint16, _F32))
        small = src == dst and isinstance(src, types.Integer) and src.bitwidth <= 16
        if not (half or small or src == dst == _F32):
            return 0
        if taps:
            return 8 if src == dst == _F32 else 16
        return 256 // src.bitwidth

    return lanes


def _max3_chunk(taps: bool):
    """``chunk`` of :data:`max_rows3` and :data:`max_taps3` (:func:`_row_intrinsic`)."""
    def chunk(context, builder, signature, ss, ds, scale):
        src, dst = signature.args[0].dtype, signature.args[4].dtype
        load, _ = _vectors(context, builder, src, src != dst and not taps)
        _, put = _vectors(context, builder, dst, src != dst and taps)
        comb = _max_comb(builder, _F32 if src != dst else src)

        def emit(k, at, dq):
            if taps:  # the taps 2k, 2k + 1, 2k + 2 of a row buffer, in order
                p, q = load(ss.data, at[0], 2 * k), load(ss.data, builder.add(at[0], ir.Constant(_I64, 1)), 2 * k)
                even, odd = list(range(0, 2 * k, 2)), list(range(1, 2 * k, 2))
                v = comb(comb(_pick(builder, p, p, even), _pick(builder, p, p, odd)), _pick(builder, q, q, odd))
            else:  # three rows, in order
                v = comb(comb(load(ss.data, at[0], k), load(ss.data, at[1], k)), load(ss.data, at[2], k))
            put(ds.data, dq, v)
            return ir.Constant(_BIT, 1)

        return emit

    return chunk


#: ``max_rows3(src, a, b, c, dst, d, m, scale, acc)``: write ``max_num(max_num(src[a + q],
#: src[b + q]), src[c + q])`` into ``dst[d + q]`` for q < m, 32 bytes of src a call (32 outputs
#: for 1-byte elements, 16 for 2, 8 for float32; half as many for shorter rows), and return True
#: (``scale`` and ``acc`` unused): the three rows of 3-high windows, combined in the order of the
#: plane kernels' plain loop (:func:`poolkit._kernels.sliding._plane_k3s2`), so the same bits.
#: Served when src and dst have one dtype, an integer of 1 or 2 bytes or float32, or src holds
#: float16 bits (uint16) and dst float32 (their values); else, or for a row shorter than one
#: call, False, nothing written.  ``max_num``'s rule: a later tap replaces the maximum only when
#: greater (floats without NaN: the plane kernels scan for NaN first).
max_rows3 = _row_intrinsic(1, _max3_lanes(False), _max3_chunk(False))
#: ``max_taps3(src, w, w', w'', dst, d, m, scale, acc)``: write ``max_num(max_num(src[w + 2q],
#: src[w + 2q + 1]), src[w + 2q + 2])`` into ``dst[d + q]`` for q < m, 16 a call (8 for rows of 8
#: to 15; float32 8 a call, 4 for rows of 4 to 7), and return True: the taps of windows 3 wide at
#: stride 2 from a row buffer, in the plain loop's order.  Served as :data:`max_rows3`, with src
#: float32 and dst float16 bits (uint16: the values, each one of a float16's, rounded back exactly)
#: for float16; else False.  Reads src[w : w + 2m + 1] only.
max_taps3 = _row_intrinsic(2, _max3_lanes(True), _max3_chunk(True))
