"""EM streamed from a feature archive on disk: time per iteration and peak memory, N = 1e7 frames.

The parent writes an HDF5 feature archive of N frames (D = 39, float32: 1.56 GB at N = 1e7) in
utterances of 10,000 frames, drawn from a fixed mixture of 32 Gaussians; a fresh process then
runs EM iterations (E-step streamed chunk by chunk from the archive, M-step) with K components
and reports seconds per iteration after the first (which also pays the process's one-time start) and its peak
resident memory, which must not grow with N; a
second one runs the same E-steps as Dask tasks on a 2-worker LocalCluster (the overhead of
distribution, on the same two cores).

    .venv/bin/python bench/bench_stream.py [--n 10000000] [--k 256] [--iters 4]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
D, UTT = 39, 10_000


def write_archive(path: Path, n: int) -> None:
    from acoustic_gmm.features import MfccConfig
    from acoustic_gmm.storage import write_features

    rng = np.random.default_rng(0)
    means, sds = rng.normal(0, 3, (32, D)), np.sqrt(rng.uniform(0.5, 2, (32, D)))

    def utterances():
        for i in range(n // UTT):
            r = np.random.default_rng(i)
            z = r.integers(32, size=UTT)
            yield f"u{i:06d}", (means[z] + r.standard_normal((UTT, D)) * sds[z]).astype(np.float32), None, None

    write_features(path, utterances(), config=MfccConfig(n_mfcc=13, deltas=2), sample_rate=8000)


def worker(path: str, k: int, iters: int, dask: bool = False) -> None:
    from acoustic_gmm.gmm import DiagGMM, accumulate, m_step
    from acoustic_gmm.storage import FeatureArchive

    client = None
    if dask:  # the same E-steps as Dask tasks on a 2-process LocalCluster: what distribution costs
        from dask.distributed import Client, LocalCluster

        from acoustic_gmm.gmm import DaskFrames

        client = Client(LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None))
    with FeatureArchive(path) as fa:
        source = DaskFrames(path, client) if dask else fa
        first = fa[fa.ids[0]][:k].astype(np.float64)
        model = DiagGMM(np.full(k, 1 / k), first, np.ones((k, D)) * 4, dtype="float32")
        floor = np.full(D, 1e-10)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            stats = accumulate(model, source)
            model = m_step(stats, floor=floor, dtype="float32")
            times.append(time.perf_counter() - t0)
    # per iteration after the first, which also pays each process's one-time start (the kernels' load, a Dask
    # worker's imports): what a long training pays per iteration
    print(json.dumps({"s_per_iter": float(np.mean(times[1:] or times)), "first": times[0], "times": times,
                      "n": stats.n_frames,
                      "avg_loglik": stats.avg_loglik,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--k", type=int, default=256)
    ap.add_argument("--iters", type=int, default=4)
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), int(args.worker[2]), args.worker[3] == "dask")
        return
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parents[1]) as tmp:
        path = Path(tmp) / "stream.h5"
        t0 = time.perf_counter()
        write_archive(path, args.n)
        written = time.perf_counter() - t0
        runs = {}
        for how in ("local", "dask"):
            out = subprocess.run([sys.executable, __file__, "--worker", str(path), str(args.k), str(args.iters), how],
                                 check=True, capture_output=True, text=True).stdout
            runs[how] = json.loads(out.strip().splitlines()[-1])
        size = path.stat().st_size / 1e9
    print(f"archive: {args.n:,} frames x {D} ({size:.2f} GB) written in {written:.0f} s")
    for how, what in (("local", "streamed in one process"), ("dask", "as Dask tasks, 2-worker LocalCluster")):
        r = runs[how]
        print(f"EM {what}, K={args.k}: {r['s_per_iter']:.2f} s/iter (first {r['first']:.2f} s), "
              f"peak RSS {r['peak_mb']:.0f} MB (client process), {r['n']:,} frames per pass")
    ratio = runs['dask']['s_per_iter'] / runs['local']['s_per_iter']
    print(f"Dask overhead: {ratio:.2f}x the single-process iteration on the same 2 cores (target <= 1.1x: "
          f"{'ok' if ratio <= 1.1 else 'MISSED'}); log-likelihoods {runs['local']['avg_loglik']:.5f} / "
          f"{runs['dask']['avg_loglik']:.5f}")


if __name__ == "__main__":
    main()
