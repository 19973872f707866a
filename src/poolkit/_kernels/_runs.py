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
* :data:`pair_sums8`, :data:`pair_max16`, :data:`half_pair_max16` (and their narrower kin): one
  call makes 8 or 16 outputs of a row of 2x2 stride-2 windows from the window's two input rows --
  float32 sums in float64 or float32, integer maxima, float16 maxima -- and
  :data:`max_rows3` and :data:`max_taps3` the rows and the taps of the plane kernels' 3-wide
  stride-2 maxima of 1- and 2-byte integers and float16.  Each combines in the order of the plain
  loop it replaces, so the same bits; a row's last call overlaps the one before it
  (:func:`poolkit._kernels._loops.vector_row`, which gives the figures).

Float32 sums and float64 inputs gained nothing from the vectors (measured for the channels-first
runs: the same time within 2%), so they keep the plain loops.  The division is the same IEEE
division of each sum, and the quotient is rounded once to the output's dtype, as the plain
loop's assignment does.  See BENCHMARKS.md for the figures.
"""

from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

_I16 = ir.IntType(16)
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


def _loader(builder, n: int = _LANES, wide=None):
    """load(ptr, i): the ``n`` float32 at ptr[i:], widened to ``wide`` (float64; float32 keeps them)."""
    wide = ir.DoubleType() if wide is None else wide
    vin, vacc = ir.VectorType(ir.FloatType(), n), ir.VectorType(wide, n)

    def load(ptr, i):
        v = builder.load(builder.bitcast(builder.gep(ptr, [i]), vin.as_pointer()), align=4)
        return v if wide == ir.FloatType() else builder.fpext(v, vacc)

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
    dst = builder.bitcast(builder.gep(out.data, [at]), ir.VectorType(oel, n).as_pointer())
    builder.store(values, dst, align=oty.dtype.bitwidth // 8)


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
            return ir.Constant(ir.IntType(1), 0)
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
            return ir.Constant(ir.IntType(1), 0)
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
        return ir.Constant(ir.IntType(1), 1)

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


def _pair_rows(lanes: int, kind: str):
    """The intrinsic of ``lanes`` outputs a call for ``kind`` "sums" (:data:`pair_sums8`,
    :data:`pair_sums4`), "maxima" of integers (:data:`pair_max16`, :data:`pair_max8`) or "half"
    maxima of float16 bits (:data:`half_pair_max16`, :data:`half_pair_max8`)."""

    @intrinsic
    def pair_rows(typingctx, x, r0, r1, r2, out, d, scale, acc):
        if not all(isinstance(a, types.Array) for a in (x, out)) or not isinstance(acc, types.NumberClass):
            return None
        f32, f64 = types.float32, types.float64
        wide = acc.instance_type
        if kind == "maxima":
            served = isinstance(x.dtype, types.Integer) and out.dtype == x.dtype
        elif kind == "half":
            served = x.dtype == out.dtype == types.uint16
        else:
            served = x.dtype == f32 and wide in (f32, f64) and out.dtype in (f32, f64)

        def codegen(context, builder, signature, args):
            if not served:
                return ir.Constant(ir.IntType(1), 0)
            xs, os_, oty = _arrays(context, builder, signature, args, 0, 4)
            args = args[:3] + args[4:]  # r2 unused
            taps = 2 * lanes
            even, odd = list(range(0, taps, 2)), list(range(1, taps, 2))
            if kind == "sums":
                double = ir.DoubleType()
                load = _loader(builder, taps, double if wide == f64 else ir.FloatType())
                rows = builder.fadd(load(xs.data, args[1]), load(xs.data, args[2]))  # the two rows at each tap
                sums = builder.fadd(_pick(builder, rows, rows, even), _pick(builder, rows, rows, odd))
                if wide == f32:  # the plain loop's float32 sum times the float64 scale: a float64 product
                    sums = builder.fpext(sums, ir.VectorType(double, lanes))
                _store(context, builder, oty, os_, args[4], builder.fmul(sums, _splat(builder, args[5], lanes)))
                return ir.Constant(ir.IntType(1), 1)
            el = context.get_value_type(x.dtype)
            vin, align = ir.VectorType(el, taps).as_pointer(), x.dtype.bitwidth // 8
            a, b = (builder.load(builder.bitcast(builder.gep(xs.data, [i]), vin), align=align) for i in args[1:3])
            made = ir.Constant(ir.IntType(1), 1)
            if kind == "half":  # float16 bits -> float32 values (exact); not made if a tap is NaN
                single = ir.VectorType(ir.FloatType(), taps)
                a, b = (builder.fpext(builder.bitcast(v, ir.VectorType(ir.HalfType(), taps)), single) for v in (a, b))
                nan = builder.bitcast(builder.fcmp_unordered("uno", a, b), ir.IntType(taps))
                made = builder.icmp_unsigned("==", nan, ir.Constant(ir.IntType(taps), 0))
            comb = _max_comb(builder, x.dtype if kind == "maxima" else types.float32)
            rows = comb(a, b)  # the two rows at each tap, then the taps
            values = comb(_pick(builder, rows, rows, even), _pick(builder, rows, rows, odd))
            if kind == "half":  # back to float16 bits (exact: each value is a tap's)
                values = builder.bitcast(builder.fptrunc(values, ir.VectorType(ir.HalfType(), lanes)),
                                         ir.VectorType(el, lanes))
            dst = builder.bitcast(builder.gep(os_.data, [args[4]]), ir.VectorType(el, lanes).as_pointer())
            builder.store(values, dst, align=align)
            return made

        return types.boolean(x, r0, r1, r2, out, d, scale, acc), codegen

    return pair_rows


#: ``pair_sums8(x, r0, r1, r2, out, d, scale, acc)`` (r2 unused): write ``((x[r0 + 2q] + x[r1 + 2q]) + (x[r0 + 2q + 1]
#: + x[r1 + 2q + 1])) * scale``, summed in acc's dtype, into ``out[d + q]`` for q < 8 and return True;
#: or write nothing and return False unless x is float32, acc float32 or float64 (a dtype: the
#: kernel's ``work.dtype.type``) and out float32 or float64.  The additions and the product are
#: those of the plain loop (:func:`poolkit._kernels.sliding._pairs_row`: a float32 sum times the
#: float64 scale is a float64 product), so the same bits.  ``x`` and ``out`` flat C-contiguous
#: arrays, ``r0``, ``r1``, ``d`` uint64, ``scale`` float64.
pair_sums8 = _pair_rows(8, "sums")
#: :data:`pair_sums8` for 4 outputs.
pair_sums4 = _pair_rows(4, "sums")
#: ``pair_max16(x, r0, r1, r2, out, d, scale, acc)``: write the maximum of ``x[r0 + 2q]``,
#: ``x[r1 + 2q]``, ``x[r0 + 2q + 1]`` and ``x[r1 + 2q + 1]`` into ``out[d + q]`` for q < 16 and return
#: True; or write nothing and return False unless x is an integer array and out of its dtype
#: (``scale`` and ``acc`` unused).  Integers have no order rules: any order of the comparisons
#: gives the same maximum.
pair_max16 = _pair_rows(16, "maxima")
#: :data:`pair_max16` for 8 outputs.
pair_max8 = _pair_rows(8, "maxima")
#: ``half_pair_max16(x, r0, r1, r2, out, d, scale, acc)``: :data:`pair_max16` for float16 bits (``x``
#: and ``out`` uint16): the values' maxima by :func:`poolkit._kernels._loops.max_num` (the first
#: maximum wins: -0.0 before 0.0 stays -0.0), the two rows at each tap first, then the taps,
#: rounded back to float16 (exactly: each is one of the taps), so the bits of the float32 path
#: while no tap is NaN.  Returns False when a tap is NaN (what it wrote is then to be made again by
#: the NaN rules) or the arrays are not both uint16 (nothing written).
half_pair_max16 = _pair_rows(16, "half")
#: :data:`half_pair_max16` for 8 outputs.
half_pair_max8 = _pair_rows(8, "half")


def _max3(taps: bool, narrow: bool):
    """The intrinsic :data:`max_rows3` (``taps`` False) or :data:`max_taps3` (True), or its
    narrow kin (half as many outputs a call)."""

    @intrinsic
    def max3(typingctx, src, i0, i1, i2, dst, d, scale, acc):
        if not all(isinstance(a, types.Array) for a in (src, dst)):
            return None
        u16, f32 = types.uint16, types.float32
        half = (src.dtype, dst.dtype) == ((f32, u16) if taps else (u16, f32))  # float16 bits <-> values
        small = src.dtype == dst.dtype and isinstance(src.dtype, types.Integer) and src.dtype.bitwidth <= 16
        served = half or small
        lanes = (16 if taps else 256 // src.dtype.bitwidth) // (2 if narrow else 1)

        def codegen(context, builder, signature, args):
            if not served:
                return ir.Constant(ir.IntType(1), 0)
            ss, ds, _ = _arrays(context, builder, signature, args, 0, 4)
            sel = context.get_value_type(src.dtype)
            single = ir.FloatType()

            def load(i, n):
                v = builder.load(builder.bitcast(builder.gep(ss.data, [i]), ir.VectorType(sel, n).as_pointer()),
                                 align=src.dtype.bitwidth // 8)
                if half and not taps:  # float16 bits -> float32 values (exact)
                    v = builder.fpext(builder.bitcast(v, ir.VectorType(ir.HalfType(), n)), ir.VectorType(single, n))
                return v

            comb = _max_comb(builder, f32 if half else src.dtype)

            if taps:  # the taps 2k, 2k + 1, 2k + 2 of a row buffer, in order
                p, q = load(args[1], 2 * lanes), load(builder.add(args[1], ir.Constant(_I64, 1)), 2 * lanes)
                even, odd = list(range(0, 2 * lanes, 2)), list(range(1, 2 * lanes, 2))
                v = comb(comb(_pick(builder, p, p, even), _pick(builder, p, p, odd)), _pick(builder, q, q, odd))
            else:  # three rows, in order
                v = comb(comb(load(args[1], lanes), load(args[2], lanes)), load(args[3], lanes))
            if half and taps:  # float32 values of float16 -> their bits (exact)
                v = builder.bitcast(builder.fptrunc(v, ir.VectorType(ir.HalfType(), lanes)), ir.VectorType(_I16, lanes))
            out = builder.bitcast(builder.gep(ds.data, [args[5]]),
                                  ir.VectorType(context.get_value_type(dst.dtype), lanes).as_pointer())
            builder.store(v, out, align=dst.dtype.bitwidth // 8)
            return ir.Constant(ir.IntType(1), 1)

        return types.boolean(src, i0, i1, i2, dst, d, scale, acc), codegen

    return max3


#: ``max_rows3(src, a, b, c, dst, d, scale, acc)``: write ``max_num(max_num(src[a + k], src[b + k]),
#: src[c + k])`` into ``dst[d + k]`` for k < lanes, 32 bytes of src (32 for 1-byte elements, 16
#: for 2), and return True (``scale`` and ``acc`` unused): the three rows of 3-high windows,
#: combined in the order of the plane kernels' plain loop
#: (:func:`poolkit._kernels.sliding._plane_k3s2`), so the same bits.  Served when src and dst have
#: one integer dtype of 1 or 2 bytes, or src holds float16 bits (uint16) and dst float32 (their
#: values); else False, nothing written (float32 rows gained little this way and took longer to
#: compile: a first 3x3 max 2.62 -> 3.38 s).  ``max_num``'s rule: a later tap replaces the
#: maximum only when greater (floats without NaN: the plane kernels scan for NaN first).
max_rows3 = _max3(False, False)
#: :data:`max_rows3` for half as many outputs.
max_rows3_narrow = _max3(False, True)
#: ``max_taps3(src, w, w', w'', dst, d, scale, acc)``: write ``max_num(max_num(src[w + 2k],
#: src[w + 2k + 1]), src[w + 2k + 2])`` into ``dst[d + k]`` for k < 16 and return True: the taps of
#: windows 3 wide at stride 2 from a row buffer, in the plain loop's order.  Served as
#: :data:`max_rows3`, with src float32 and dst float16 bits (uint16: the values, each one of a
#: float16's, rounded back exactly) for float16; else False.  Reads src[w : w + 2 * 16 + 1] only.
max_taps3 = _max3(True, False)
#: :data:`max_taps3` for 8 outputs.
max_taps3_narrow = _max3(True, True)
