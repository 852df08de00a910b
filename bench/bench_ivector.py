"""i-vector extraction and extractor training: ours (batched) vs the textbook per-utterance loop, and the E-step
against its arithmetic floor.

On synthetic Baum-Welch statistics (UBM of ``--k`` 512 components x ``--d`` 60 features, i-vector
dimension ``--dim`` 200, ``--utts`` utterances with ~300 frames spread over the components), one run
times, side by side:

* **extraction**: :meth:`acoustic_gmm.speaker.IvectorExtractor.extract` against a plain numpy loop of
  the textbook formulas, one utterance at a time (``L = I + sum_k N_k T_k' S_k^-1 T_k``,
  ``w = L^-1 sum_k T_k' S_k^-1 F_k``), with the per-component products ``T_k' S_k^-1 T_k``
  precomputed once as any implementation does; the largest difference between the two sets of
  i-vectors is printed (target: at most 1e-5) and the ratio (target: at least 10x);
* **training**: seconds per EM iteration of :func:`acoustic_gmm.speaker.train_extractor` (E-step with
  posterior covariances, accumulators, M-step) against the textbook loop's E-step and accumulators
  over the same utterances (the M-step is the same for both and not counted for the loop);
* **the E-step against its arithmetic floor**, at the recipe shapes (``--floor-shapes``, default K 128 / D 60 /
  R 100 / U 7,200 and K 512 / R 200 / U 2,000): :meth:`~acoustic_gmm.speaker.IvectorExtractor.accumulate` beside
  plain matrix products doing the E-step's multiply-adds (``U K R^2`` for the precisions and again for the
  second-order accumulators, ``U K D R`` for each first-order product, ``U R^3`` for the factorisations and
  inverses), timed in the same run (target: within 2x);
* peak memory (RSS) of the process after all of it.

Times are the best of ``--repeats`` runs; "other CPU" is what other processes used meanwhile.

    .venv/bin/python bench/bench_ivector.py [--k 512] [--d 60] [--dim 200] [--utts 2000]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_em import CpuMeter, machine_facts, wait_for_quiet  # noqa: E402  (same directory)

from acoustic_gmm.gmm import DiagGMM  # noqa: E402
from acoustic_gmm.speaker import IvectorExtractor
from acoustic_gmm.speaker._bw_stats import BWStats, _ubm_id

EXTRACT_TARGET = 10.0


FLOOR_TARGET = 2.0


def floor_seconds(K, D, R, U, repeats):
    """Plain float64 matrix products with the E-step's multiply-adds (see the module), best of ``repeats``."""
    rng = np.random.default_rng(1)
    products = [((U, K), (K, R * R)), ((K, U), (U, R * R)), ((U, K * D), (K * D, R)), ((K * D, U), (U, R)),
                ((U * R, R), (R, R))]
    total = 0.0
    for a, b in products:
        x, y = rng.normal(size=a), rng.normal(size=b)
        total += best(lambda: x @ y, repeats)[0]
    return total


def make_problem(K, D, R, U, seed=0):
    rng = np.random.default_rng(seed)
    var = rng.uniform(0.5, 2.0, size=(K, D))
    ubm = DiagGMM(np.full(K, 1 / K), rng.normal(size=(K, D)), var)
    T = rng.normal(scale=0.3, size=(K, D, R))
    N = rng.dirichlet(np.full(K, 0.1), size=U) * rng.uniform(100, 500, size=(U, 1))  # ~300 frames, peaky
    W = rng.normal(size=(U, R))
    sd = np.sqrt(var)
    TW = (W @ T.reshape(K * D, R).T).reshape(U, K, D)
    F = (N[:, :, None] * TW + np.sqrt(N)[:, :, None] * rng.normal(size=(U, K, D))) * sd
    return ubm, IvectorExtractor(ubm, T), BWStats([f"u{i}" for i in range(U)], N, F, _ubm_id(ubm))


def textbook(extractor: IvectorExtractor, stats: BWStats, *, accumulate: bool = False):
    """One utterance at a time, in the model's own (unnormalised) parameters."""
    ubm = extractor.ubm
    K, D, R = extractor.T.shape
    Tk = extractor.T * np.sqrt(ubm.variances)[:, :, None]           # T_k, (K, D, R)
    prec = 1 / ubm.variances.astype(np.float64)                      # S_k^-1 (diagonal)
    TtSi = Tk * prec[:, :, None]                                     # S_k^-1 T_k
    P = np.einsum("kdr,kds->krs", Tk, TtSi)                          # T_k' S_k^-1 T_k, once
    TtSi_flat = TtSi.reshape(K * D, R)
    W = np.empty((len(stats), R))
    if accumulate:
        A, C = np.zeros((K, R, R)), np.zeros((K * D, R))
    for u in range(len(stats)):
        L = np.eye(R) + np.tensordot(stats.N[u], P, axes=1)
        Linv = np.linalg.inv(L)
        W[u] = Linv @ (TtSi_flat.T @ stats.F[u].ravel())
        if accumulate:
            second = Linv + np.outer(W[u], W[u])
            A += stats.N[u][:, None, None] * second
            C += np.outer(stats.F[u].ravel() / np.sqrt(ubm.variances).ravel(), W[u])
    return W


def best(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=512)
    ap.add_argument("--d", type=int, default=60)
    ap.add_argument("--dim", type=int, default=200)
    ap.add_argument("--utts", type=int, default=2000)
    ap.add_argument("--loop-utts", type=int, default=200, help="utterances the (slow) loop runs on; scaled up")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--floor-shapes", default="128x60x100x7200,512x60x200x2000",
                    help="KxDxRxU shapes of the E-step's floor rows, comma-separated")
    a = ap.parse_args()
    for line in machine_facts():
        print(line)
    wait_for_quiet(60)
    ubm, ex, stats = make_problem(a.k, a.d, a.dim, a.utts)
    few = stats.take(np.arange(min(a.loop_utts, a.utts)))
    scale = len(stats) / len(few)
    print(f"\nUBM {a.k} x {a.d}, i-vector dimension {a.dim}, {a.utts:,} utterances "
          f"(the loop runs on {len(few)} and is scaled by {scale:g})")

    meter = CpuMeter().start()
    t_ours, W = best(lambda: ex.extract(stats), a.repeats)
    t_loop, W_loop = best(lambda: textbook(ex, few), a.repeats)
    t_loop *= scale
    diff = float(np.abs(W[:len(few)] - W_loop).max())
    cpu = meter.stop()
    print(f"\n{'extraction':<34} {'seconds':>9} {'utts/s':>10}")
    print(f"{'ours (batched)':<34} {t_ours:9.2f} {a.utts / t_ours:10.0f}")
    print(f"{'textbook loop (per utterance)':<34} {t_loop:9.2f} {a.utts / t_loop:10.0f}")
    verdict = "ok" if t_loop / t_ours >= EXTRACT_TARGET and diff <= 1e-5 else "MISSED"
    print(f"ratio {t_loop / t_ours:.1f}x (target >= {EXTRACT_TARGET:g}x), largest difference {diff:.1e} "
          f"(target <= 1e-5): {verdict}; other CPU {cpu['other_cpu'] or 0:.0%}")

    meter = CpuMeter().start()
    t_iter, _ = best(lambda: ex.updated(ex.accumulate(stats)), a.repeats)
    t_loop_iter, _ = best(lambda: textbook(ex, few, accumulate=True), a.repeats)
    t_loop_iter *= scale
    cpu = meter.stop()
    print(f"\n{'training, one EM iteration':<34} {'seconds':>9}")
    print(f"{'ours (batched E-step + M-step)':<34} {t_iter:9.2f}")
    print(f"{'textbook loop (E-step only)':<34} {t_loop_iter:9.2f}")
    print(f"ratio {t_loop_iter / t_iter:.1f}x; other CPU {cpu['other_cpu'] or 0:.0%}")
    statistics_mb = (stats.N.nbytes + stats.F.nbytes) / 2 ** 20
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB (of which the statistics "
          f"{statistics_mb:.0f} MB and T'T products {ex._P.nbytes / 2 ** 20:.0f} MB)")
    print(f"\n{'E-step vs its arithmetic floor':<34} {'E-step s':>9} {'floor s':>9} {'ratio':>7}")
    for shape in a.floor_shapes.split(","):
        K, D, R, U = (int(v) for v in shape.split("x"))
        ubm, ex, stats = make_problem(K, D, R, U)
        meter = CpuMeter().start()
        t_e, _ = best(lambda: ex.accumulate(stats), a.repeats)
        t_f = floor_seconds(K, D, R, U, a.repeats)
        cpu = meter.stop()
        verdict = "ok" if t_e <= FLOOR_TARGET * t_f else "MISSED"
        print(f"{f'K {K} / D {D} / R {R} / U {U:,}':<34} {t_e:9.2f} {t_f:9.2f} {t_e / t_f:6.2f}x "
              f"(target <= {FLOOR_TARGET:g}x): {verdict}; other CPU {cpu['other_cpu'] or 0:.0%}")


if __name__ == "__main__":
    main()
