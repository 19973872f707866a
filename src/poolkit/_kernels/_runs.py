"""Float64 sums of float32 runs written as LLVM vectors: the global average of NCHW and NHWC
batches.

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

Float32 sums and float64 inputs gained nothing from the vectors (measured for the channels-first
runs: the same time within 2%), so they keep the plain loops.  The division is the same IEEE
division of each sum, and the quotient is rounded once to the output's dtype, as the plain
loop's assignment does.  See BENCHMARKS.md for the figures.
"""

from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

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


def _loader(builder, vacc):
    """load(ptr, i): the 8 float32 at ptr[i:], widened to float64."""
    vin = ir.VectorType(ir.FloatType(), _LANES)

    def load(ptr, i):
        return builder.fpext(builder.load(builder.bitcast(builder.gep(ptr, [i]), vin.as_pointer()), align=4), vacc)

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
    n = sums.type.count
    q = builder.fdiv(sums, _splat(builder, divisor, n))
    oel = context.get_value_type(oty.dtype)
    if oel != ir.DoubleType():
        q = builder.fptrunc(q, ir.VectorType(oel, n))
    dst = builder.bitcast(builder.gep(out.data, [at]), ir.VectorType(oel, n).as_pointer())
    builder.store(q, dst, align=oty.dtype.bitwidth // 8)


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
        load = _loader(builder, vacc)

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
        vacc = ir.VectorType(ir.DoubleType(), _LANES)
        load = _loader(builder, vacc)
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
