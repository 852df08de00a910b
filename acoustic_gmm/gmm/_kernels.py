"""Fused float32 loops of the E-step, compiled by numba (already a dependency of librosa).

Between the E-step's two matrix products, numpy needs a pass over the chunk's whole
(frames x components) block for every step (max, subtract, exp, sum, normalise, occupancy),
each through memory.  Here each frame's row is done while it sits in L1 cache, in loops the
compiler vectorises (AVX2 / AVX-512).  Both kernels release the GIL, so the E-step's threads
run them side by side.  The exponential is Cephes' ``expf`` (Cody-Waite range reduction and a
degree-5 polynomial: 2.5e-7 relative to the exact exponential of the same float32 argument,
against numpy's 1e-7), written out so that it vectorises, which a call to the C library's
``expf`` would not.

Compiled on first use and cached on disk beside this file (numba's ``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

__all__ = []


# Fast-math licences that keep the range reduction's order (no "reassoc") and let -inf through (no "ninf":
# a component of weight 0 has log-density -inf).
_FLAGS = {"nnan", "nsz", "arcp", "contract", "afn"}


@intrinsic
def _as_float32(typingctx, bits):
    """The float32 whose bit pattern is the int32 ``bits`` (LLVM's bitcast; vectorises)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))
    return types.float32(types.int32), codegen


@intrinsic
def _as_int32(typingctx, x):
    """The int32 with the bit pattern of the float32 ``x``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int32))
    return types.int32(types.float32), codegen


@njit(inline="always")
def _order_key(bits):
    """An int32 that sorts as the float32 with these bits does (negative floats' magnitude bits flipped).

    Its own inverse.  LLVM vectorises an integer maximum over a row, but not a float one (that needs
    function-wide no-NaN attributes numba does not set): 0.02 s instead of 0.11 s per million frames at K = 256.
    """
    return bits ^ ((bits >> np.int32(31)) & np.int32(0x7FFFFFFF))


@njit(inline="always")
def _row_max(row):
    """The largest float32 of ``row``, as an integer maximum over order keys (which vectorises)."""
    key = np.int32(-2147483648)
    for k in range(len(row)):
        key = max(key, _order_key(_as_int32(row[k])))
    return _as_float32(_order_key(key))


@njit(inline="always", fastmath=_FLAGS)
def _exp(x):
    """exp(x) in float32 for x <= 0, x clamped at -87 (e^-87 = 1.6e-38, float32's smallest normal: nothing
    beside a row's largest term, 1)."""
    x = max(x, np.float32(-87.0))
    n = np.floor(x * np.float32(1.4426950408889634) + np.float32(0.5))  # x = n ln2 + g, |g| <= ln2 / 2
    g = x - n * np.float32(0.693359375) - n * np.float32(-2.12194440e-4)  # ln2 in two parts: exact n * hi
    p = np.float32(1.9875691500e-4)
    p = p * g + np.float32(1.3981999507e-3)
    p = p * g + np.float32(8.3334519073e-3)
    p = p * g + np.float32(4.1665795894e-2)
    p = p * g + np.float32(1.6666665459e-1)
    p = p * g + np.float32(5.0000001201e-1)
    p = p * g * g + g + np.float32(1.0)
    return p * _as_float32((np.int32(n) + np.int32(127)) << np.int32(23))  # times 2^n


@njit(fastmath=_FLAGS | {"reassoc"}, nogil=True, cache=True)
def posteriors_and_scale(L, E, n_scaled, top, total, occ):
    """The E-step between its two matrix products, frame by frame, in place.

    ``L`` (n, K) float32 holds ``log w_k + log N(x | k)``; it becomes ``exp(L - top)``, the unnormalised
    responsibilities.  ``top`` and ``total`` (n,) get each frame's maximum and the sum of its row, ``occ``
    (K,) float32 has ``row / total`` added, and the first ``n_scaled`` columns of ``E`` (n, .) are divided
    by ``total``, so that ``L.T @ E`` then gives the responsibility-weighted sums.  One frame's row stays in
    L1 cache through all of it.  (The sums over a row may be reordered to vectorise; the exponential keeps
    its own, unreordered, arithmetic.)
    """
    n, K = L.shape
    for j in range(n):
        row = L[j]
        m = _row_max(row)
        s = np.float32(0.0)
        for k in range(K):
            e = _exp(row[k] - m)
            row[k] = e
            s += e
        top[j] = m
        total[j] = s
        inv = np.float32(1.0) / s
        for k in range(K):
            occ[k] += row[k] * inv
        for d in range(n_scaled):
            E[j, d] *= inv


@njit(nogil=True, cache=True)
def expand(X, offset, E):
    """``E = [X - offset, (X - offset)^2, 1]`` (n, 2D + 1) float32, in one pass and without the GIL.

    What :meth:`~acoustic_gmm.gmm.DiagGMM.expand` computes with numpy, whose three passes (and the GIL held
    between them) cost the two-threaded E-step 0.08 s per million frames at K = 256, more than the kernel
    above.
    """
    n, D = X.shape
    for j in range(n):
        for d in range(D):
            y = np.float32(X[j, d] - offset[d])
            E[j, d] = y
            E[j, D + d] = y * y
        E[j, 2 * D] = 1


@njit(nogil=True, cache=True)
def top_components(L, sel):
    """Each frame's ``C = sel.shape[1]`` highest-scoring components of ``L`` (n, K) into ``sel`` (n, C), in no
    particular order.

    A frame's likely components sit within a few tens of nats of its best: the row's maximum (vectorised, by the
    integer keys of ``_order_key``), then the number of components within a beam of it (vectorised; the beam
    doubles from 16 nats until it holds C), then only those few are gathered and partitioned (Hoare's
    selection) so that the C best come first.  A full partition of every row (numpy's) cost more than the
    E-step it serves.
    """
    n, K = L.shape
    C = sel.shape[1]
    vals = np.empty(K, np.float32)
    cand = np.empty(K, np.int32)
    for j in range(n):
        row = L[j]
        top = _row_max(row)
        beam = np.float32(16.0)
        while True:
            cut = top - beam
            count = 0
            for k in range(K):
                count += row[k] > cut
            if count >= C or beam > 1e30:
                break
            beam *= np.float32(2.0)
        m = 0
        for k in range(K):
            if row[k] > cut:
                vals[m] = row[k]
                cand[m] = k
                m += 1
        for k in range(K):  # a row of fewer than C finite scores: the rest in order
            if m >= C:
                break
            if not row[k] > cut:
                vals[m] = row[k]
                cand[m] = k
                m += 1
        lo, hi = 0, m - 1
        while lo < hi:  # the C largest of vals[:m] into vals[:C]
            pivot = vals[(lo + hi) // 2]
            a, b = lo, hi
            while a <= b:
                while vals[a] > pivot:
                    a += 1
                while vals[b] < pivot:
                    b -= 1
                if a <= b:
                    vals[a], vals[b] = vals[b], vals[a]
                    cand[a], cand[b] = cand[b], cand[a]
                    a += 1
                    b -= 1
            if C - 1 <= b:
                hi = b
            elif C - 1 >= a:
                lo = a
            else:
                break
        for c in range(C):
            sel[j, c] = cand[c]


@njit(fastmath=_FLAGS | {"reassoc"}, nogil=True, cache=True)
def selected_estep(E, sel, projT, occ, S):
    """The E-step of one chunk over each frame's selected components only (Gaussian selection).

    ``E`` (n, 2D + 1) float32 is ``[y, y^2, 1]``, ``sel`` (n, C) the components, ``projT`` (K, 2D + 1) the
    model's E-step projection (constants in the last column), so a component's ``log w + log N(x)`` is one dot
    product of C per frame instead of K.  Responsibilities are normalised over the C; ``occ`` (K,) and ``S``
    (K, 2D) float64 get the frame's sums.  Returns the chunk's log-likelihood over the selected components.
    """
    n, C = sel.shape
    W = E.shape[1]
    ll = np.empty(C, np.float32)
    loglik = 0.0
    for j in range(n):
        top = np.float32(-np.inf)
        for c in range(C):
            k = sel[j, c]
            s = np.float32(0.0)
            for d in range(W):
                s += E[j, d] * projT[k, d]
            ll[c] = s
            top = max(top, s)
        total = np.float32(0.0)
        for c in range(C):
            e = _exp(ll[c] - top)
            ll[c] = e
            total += e
        loglik += np.float64(top) + np.log(np.float64(total))
        inv = np.float32(1.0) / total
        for c in range(C):
            k = sel[j, c]
            g = ll[c] * inv
            occ[k] += g
            for d in range(W - 1):
                S[k, d] += g * E[j, d]
    return loglik
