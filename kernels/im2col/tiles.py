"""The two register-blocked micro-kernels of the direct convolution (direct.py), written as LLVM
IR through Numba intrinsics so that the accumulators stay in vector registers: Numba's loop
vectorizer, given the same loops in Python, kept them in memory (gathers and scatters in the
compiled loop).

A vector holds ``L`` consecutive elements (16 float32 or 8 float64 with AVX-512; 8 or 4 without).
Addresses are integers (``array.ctypes.data`` plus a byte offset); ``offs`` points to int64
element offsets.

    fma_tile(x, w, offs, K, ws, y, ys):      for m < MR, v < NV:
        y[m·ys + v·L : m·ys + (v + 1)·L] = Σ_{k<K} w[k·ws + m] · x[offs[k] + v·L : offs[k] + (v + 1)·L]
    (MR output channels × NV·L consecutive outputs; each step loads NV vectors of x and
    broadcasts MR weights: MR·NV fused multiply-adds per MR + NV loads)

    dot_tile(g, gs, x, offs, nq, out, os, nimg, gimg, ximg):   for a < MA, b < KB:
        out[a·os + b] += Σ_{i<nimg} Σ_{q<nq} Σ_{l<L} g[i·gimg + a·gs + q·L + l]
                                                    · x[i·ximg + offs[b] + q·L + l]
    (MA × KB dot products over nimg images of nq·L terms each; the L lanes are added pairwise at
    the end)

Loads and stores are unaligned; the sums run in k (or q) order with one rounding per fused
multiply-add, the same whatever the thread count.

Numba's on-disk cache of the kernels that call these tiles (direct.py) does not notice a change
to this file: after editing it, delete kernels/im2col/__pycache__ (a clean clone compiles afresh).
"""
from __future__ import annotations

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

AVX512 = bool(llvm.get_host_cpu_features().get("avx512f", False))
VECTOR_BYTES = 64 if AVX512 else 32
# fma_tile's MR rows × NV vectors of accumulators: 16 × 1 of the 32 AVX-512 registers; 4 × 3 of the
# 16 AVX2 ones (4 broadcasts and 3 loads per 12 multiply-adds, where 8 × 1 took 9 per 8)
MR, NV = (16, 1) if AVX512 else (4, 3)
# dot_tile's MA × KB accumulators: 4 × 6 of the 32 AVX-512 registers; 4 × 3 of the 16 AVX2 ones
# (4 × 6 there spilled: the dW pass of resnet_small's 16→16 convolution took 5.1 ms, 4 × 3 2.3 ms)
MA, KB = (4, 6) if AVX512 else (4, 3)


def lanes(dtype) -> int:
    """Elements per vector register for ``dtype`` (float32 or float64)."""
    return VECTOR_BYTES // np.dtype(dtype).itemsize


def _vector(fp, n):
    return ir.VectorType(fp, n)


def _splat(builder, value, vt, n):
    i32 = ir.IntType(32)
    undef = ir.Constant(vt, ir.Undefined)
    one = builder.insert_element(undef, value, ir.Constant(i32, 0))
    return builder.shuffle_vector(one, undef, ir.Constant(ir.VectorType(i32, n), [0] * n))


def _fma(builder, vt, n, fp_name):
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt, vt, vt]), f"llvm.fma.v{n}{fp_name}")


def _loop(builder, count, inits):
    """Open a counted loop (0 <= i < count, skipped when count <= 0) whose accumulators start at
    ``inits``; returns (i, accs, close) where close(new_accs) ends the loop and returns the final
    accumulators (``inits`` if it did not run)."""
    i64 = ir.IntType(64)
    pre = builder.block
    body = builder.function.append_basic_block("tile_body")
    done = builder.function.append_basic_block("tile_done")
    builder.cbranch(builder.icmp_signed("<=", count, ir.Constant(i64, 0)), done, body)
    builder.position_at_end(body)
    i = builder.phi(i64)
    i.add_incoming(ir.Constant(i64, 0), pre)
    accs = []
    for v in inits:
        phi = builder.phi(v.type)
        phi.add_incoming(v, pre)
        accs.append(phi)

    def close(new):
        nxt = builder.add(i, ir.Constant(i64, 1))
        last = builder.block
        i.add_incoming(nxt, last)
        for a, v in zip(accs, new):
            a.add_incoming(v, last)
        builder.cbranch(builder.icmp_signed("<", nxt, count), body, done)
        builder.position_at_end(done)
        out = []
        for v0, v in zip(inits, new):
            phi = builder.phi(v.type)
            phi.add_incoming(v0, pre)
            phi.add_incoming(v, last)
            out.append(phi)
        return out

    return i, accs, close


def _int64_args(context, builder, signature, args):
    """The intrinsic's integer arguments as i64 values (addresses, counts and strides)."""
    return [context.cast(builder, v, t, types.int64) for v, t in zip(args, signature.args)]


def _integers(*tys):
    return all(isinstance(t, types.Integer) for t in tys)


def _types(dtype):
    fp = ir.FloatType() if np.dtype(dtype) == np.float32 else ir.DoubleType()
    return fp, ("f32" if np.dtype(dtype) == np.float32 else "f64"), np.dtype(dtype).itemsize


def _make_fma_tile(dtype):
    fp, name, _ = _types(dtype)
    n = lanes(dtype)
    vt = _vector(fp, n)

    @intrinsic
    def fma_tile(typingctx, x, w, offs, k, ws, y, ys):
        def codegen(context, builder, signature, args):
            i64 = ir.IntType(64)
            xa, wa, oa, count, wstride, ya, ystride = _int64_args(context, builder, signature, args)
            xp, wp = builder.inttoptr(xa, fp.as_pointer()), builder.inttoptr(wa, fp.as_pointer())
            op, yp = builder.inttoptr(oa, i64.as_pointer()), builder.inttoptr(ya, fp.as_pointer())
            fma = _fma(builder, vt, n, name)
            i, accs, close = _loop(builder, count, [ir.Constant(vt, [0.0] * n)] * (MR * NV))
            start = builder.gep(xp, [builder.load(builder.gep(op, [i]))])
            xv = [builder.load(builder.bitcast(builder.gep(start, [ir.Constant(i64, v * n)]), vt.as_pointer()), align=1)
                  for v in range(NV)]
            row = builder.gep(wp, [builder.mul(i, wstride)])
            new = []
            for m in range(MR):
                wm = _splat(builder, builder.load(builder.gep(row, [ir.Constant(i64, m)])), vt, n)
                new += [builder.call(fma, [wm, xv[v], accs[m * NV + v]]) for v in range(NV)]
            final = close(new)
            for m in range(MR):
                for v in range(NV):
                    at = builder.add(builder.mul(ir.Constant(i64, m), ystride), ir.Constant(i64, v * n))
                    builder.store(final[m * NV + v], builder.bitcast(builder.gep(yp, [at]), vt.as_pointer()), align=1)
            return context.get_dummy_value()
        if not _integers(x, w, offs, k, ws, y, ys):
            return None
        return types.void(x, w, offs, k, ws, y, ys), codegen
    return fma_tile


def _hsum(builder, v, n):
    """Σ of a vector's lanes, halves added pairwise."""
    i32 = ir.IntType(32)
    while n > 1:
        half = n // 2
        lo = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, half), list(range(half))))
        hi = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, half), list(range(half, n))))
        v, n = builder.fadd(lo, hi), half
    return builder.extract_element(v, ir.Constant(i32, 0))


def _make_dot_tile(dtype):
    fp, name, _ = _types(dtype)
    n = lanes(dtype)
    vt = _vector(fp, n)

    @intrinsic
    def dot_tile(typingctx, g, gs, x, offs, nq, out, os, nimg, gimg, ximg):
        def codegen(context, builder, signature, args):
            i64 = ir.IntType(64)
            ga, gstride, xa, oa, count, outa, ostride, images, gstep, xstep = _int64_args(context, builder, signature,
                                                                                          args)
            gp, xp = builder.inttoptr(ga, fp.as_pointer()), builder.inttoptr(xa, fp.as_pointer())
            op, outp = builder.inttoptr(oa, i64.as_pointer()), builder.inttoptr(outa, fp.as_pointer())
            fma = _fma(builder, vt, n, name)
            taps = [builder.load(builder.gep(op, [ir.Constant(i64, b)])) for b in range(KB)]
            img, accs_img, close_img = _loop(builder, images, [ir.Constant(vt, [0.0] * n)] * (MA * KB))
            gi = builder.gep(gp, [builder.mul(img, gstep)])
            xi = builder.gep(xp, [builder.mul(img, xstep)])
            starts = [builder.gep(xi, [t]) for t in taps]
            rows = [builder.gep(gi, [builder.mul(ir.Constant(i64, a), gstride)]) for a in range(MA)]
            q, accs, close = _loop(builder, count, accs_img)
            at = builder.mul(q, ir.Constant(i64, n))
            gv = [builder.load(builder.bitcast(builder.gep(r, [at]), vt.as_pointer()), align=1) for r in rows]
            xv = [builder.load(builder.bitcast(builder.gep(s, [at]), vt.as_pointer()), align=1) for s in starts]
            new = [builder.call(fma, [gv[a], xv[b], accs[a * KB + b]]) for a in range(MA) for b in range(KB)]
            final = close_img(close(new))
            for a in range(MA):
                for b in range(KB):
                    at = builder.add(builder.mul(ir.Constant(i64, a), ostride), ir.Constant(i64, b))
                    dst = builder.gep(outp, [at])
                    builder.store(builder.fadd(builder.load(dst), _hsum(builder, final[a * KB + b], n)), dst)
            return context.get_dummy_value()
        if not _integers(g, gs, x, offs, nq, out, os, nimg, gimg, ximg):
            return None
        return types.void(g, gs, x, offs, nq, out, os, nimg, gimg, ximg), codegen
    return dot_tile


_FMA = {np.dtype(t): _make_fma_tile(t) for t in (np.float32, np.float64)}
_DOT = {np.dtype(t): _make_dot_tile(t) for t in (np.float32, np.float64)}


def _dtype_of(like):
    return np.dtype(np.float32 if like.dtype == types.float32 else np.float64)


def fma_tile(like, x, w, offs, k, ws, y, ys):
    """fma_tile for the dtype of the array ``like`` (compiled through the overload below)."""
    raise NotImplementedError("call from Numba-compiled code")


def dot_tile(like, g, gs, x, offs, nq, out, os, nimg, gimg, ximg):
    """dot_tile for the dtype of the array ``like`` (compiled through the overload below)."""
    raise NotImplementedError("call from Numba-compiled code")


def vector_lanes(like):
    """lanes(like.dtype) as a compile-time constant."""
    raise NotImplementedError("call from Numba-compiled code")


@overload(fma_tile)
def _fma_tile(like, x, w, offs, k, ws, y, ys):
    tile = _FMA[_dtype_of(like)]
    return lambda like, x, w, offs, k, ws, y, ys: tile(x, w, offs, k, ws, y, ys)


@overload(dot_tile)
def _dot_tile(like, g, gs, x, offs, nq, out, os, nimg, gimg, ximg):
    tile = _DOT[_dtype_of(like)]
    return lambda like, g, gs, x, offs, nq, out, os, nimg, gimg, ximg: tile(g, gs, x, offs, nq, out, os, nimg, gimg,
                                                                             ximg)


@overload(vector_lanes)
def _vector_lanes(like):
    n = lanes(_dtype_of(like))
    return lambda like: n
