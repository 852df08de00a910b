"""Time per EM iteration of a diagonal-covariance GMM: acoustic_gmm vs scikit-learn vs a GEMM floor.

What is measured, for each number of components K:

* ``ours-f32`` / ``ours-f64`` -- ``acoustic_gmm.gmm.accumulate`` (the E-step over all
  frames) followed by ``m_step``, in float32 / float64; one warm-up iteration, then
  the mean over ``--iters`` timed iterations.
* ``sklearn-f64`` / ``sklearn-f32`` -- ``sklearn.mixture.GaussianMixture(covariance_type=
  "diag").fit`` started from the same parameters, ``tol=0`` so that it runs exactly
  ``--sklearn-iters`` iterations.  s/iter is the time inside fit's EM loop (its E- and
  M-steps are timed through wrappers); ``fit`` as a whole also does an initialisation pass
  over an N x K responsibility matrix and a final E-step, reported separately.
* ``floor`` -- the time one iteration would take if it were nothing but its two float32
  matrix products (``E @ A`` for the log-densities and ``G.T @ E`` for the statistics,
  8 N D K flops in all) running at the rate this machine's BLAS achieves on those shapes.

Every configuration runs in its own subprocess, one at a time, so that the peak resident
set size (``ru_maxrss``) belongs to that configuration alone.  The data are N frames of
D = 39 dims drawn from a fixed random mixture of 32 Gaussians, made inside each worker
from the same seed; every run starts from the same K random frames as means, the global
variance and equal weights, so the log-likelihoods printed at the end should agree.

Before each worker the parent waits (``--max-wait`` seconds at most) for other processes
to leave the CPUs idle, and each row reports the share of the CPUs others used while it
was timed ("other CPU"): on a 2-core machine anything else running skews the ratios.

Run from the repository root::

    .venv/bin/python bench/bench_em.py              # N=1e6, K=64,256 (several minutes)
    .venv/bin/python bench/bench_em.py --quick      # smoke test, well under a minute
    .venv/bin/python bench/bench_em.py --k 256 --skip-sklearn
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np

D = 39
N_TRUE = 32  # components of the mixture the data are drawn from
GEN_CHUNK = 65536
CONFIGS = ("ours-f32", "ours-f64", "sklearn-f32", "sklearn-f64", "floor")
DTYPE_OF = {"ours-f32": np.float32, "ours-f64": np.float64,
            "sklearn-f32": np.float32, "sklearn-f64": np.float64}


# --------------------------------------------------------------------------- worker side

def rss_mb() -> float:
    """Current resident set size in MiB (falls back to the peak where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class CpuMeter:
    """CPU used between start() and stop(): by this process, and by everything else.

    Other work on a 2-core machine (a test suite, another benchmark) silently doubles
    timings; this makes it visible instead.  The others' share is the system-wide busy
    time from /proc/stat (steal included) minus this process's own CPU time, over
    wall time x cores.
    """

    def __init__(self):
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    @staticmethod
    def _busy_jiffies():
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]  # user nice system irq softirq steal

    def start(self):
        t = os.times()
        self._t0, self._busy0 = time.perf_counter(), self._busy_jiffies()
        self._user0, self._sys0 = t.user, t.system
        return self

    def stop(self) -> dict:
        """``other_cpu`` (share of all CPUs, None without /proc) and this process's user/sys seconds."""
        wall = time.perf_counter() - self._t0
        t = os.times()
        user, sys_ = t.user - self._user0, t.system - self._sys0
        busy = self._busy_jiffies()
        other = None
        if busy is not None and self._busy0 is not None and wall > 0:
            other = max(0.0, ((busy - self._busy0) / self.tick - user - sys_) / (wall * (os.cpu_count() or 1)))
        return {"other_cpu": other, "user_s": user, "sys_s": sys_}


def make_data(n: int, dtype, seed: int) -> np.ndarray:
    """``n`` frames from a fixed random mixture of 32 diagonal Gaussians, in ``dtype``.

    Drawn chunk by chunk in float64 and stored into a preallocated array of the target
    dtype, so float32 and float64 runs see the same frames (up to rounding) and no
    full-size float64 temporary inflates the float32 workers' peak memory.
    """
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3.0, size=(N_TRUE, D))
    sds = np.sqrt(rng.uniform(0.5, 2.0, size=(N_TRUE, D)))
    X = np.empty((n, D), dtype=dtype)
    for start in range(0, n, GEN_CHUNK):
        c = min(GEN_CHUNK, n - start)
        z = rng.integers(N_TRUE, size=c)
        X[start:start + c] = means[z] + sds[z] * rng.standard_normal((c, D))
    return X


def initial_params(X: np.ndarray, k: int, seed: int):
    """Shared starting point: K random frames as means, the global variance, equal weights."""
    rng = np.random.default_rng(seed + 1)
    means = X[np.sort(rng.choice(len(X), size=k, replace=False))].astype(np.float64)
    # Chunked so that a float32 worker never holds a full float64 copy of X.
    mean = np.zeros(D)
    for start in range(0, len(X), GEN_CHUNK):
        mean += X[start:start + GEN_CHUNK].sum(0, dtype=np.float64)
    mean /= len(X)
    ss = np.zeros(D)
    for start in range(0, len(X), GEN_CHUNK):
        Y = X[start:start + GEN_CHUNK].astype(np.float64) - mean
        ss += (Y * Y).sum(0)
    variances = np.tile(ss / len(X), (k, 1))
    return np.full(k, 1.0 / k), means, variances


def run_ours(X, weights, means, variances, dtype_name: str, n_iter: int) -> dict:
    """Warm-up iteration, then ``n_iter`` timed EM iterations of acoustic_gmm."""
    from acoustic_gmm.gmm import DiagGMM, accumulate, m_step

    model = DiagGMM(weights, means, variances, dtype=dtype_name)
    floor = np.full(D, 1e-10)
    logliks, times = [], []
    meter = CpuMeter()
    for it in range(n_iter + 1):  # iteration 0 is the warm-up
        if it == 1:
            meter.start()
        t0 = time.perf_counter()
        stats = accumulate(model, X)
        model = m_step(stats, floor=floor, dtype=dtype_name)
        times.append(time.perf_counter() - t0)
        logliks.append(stats.avg_loglik)
    timed = times[1:]
    return {"s_per_iter": sum(timed) / len(timed), "iter_times": timed, **meter.stop(),
            "warmup_s": times[0], "logliks": logliks}


def run_sklearn(X, weights, means, variances, n_iter: int) -> dict:
    """``GaussianMixture.fit`` for exactly ``n_iter`` iterations from the given start."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    # The default init_params="kmeans" would still run k-means over all of X before
    # the *_init values replace its result; "random_from_data" is the cheapest stand-in.
    gm = GaussianMixture(n_components=len(weights), covariance_type="diag", max_iter=n_iter,
                         tol=0.0, reg_covar=1e-6, weights_init=weights, means_init=means,
                         precisions_init=1.0 / variances, n_init=1,
                         init_params="random_from_data", random_state=0)
    # Instance attributes shadow the methods, so fit() calls these and we learn where
    # its EM loop starts and ends, apart from the set-up and the final E-step.
    e_starts, m_ends = [], []
    e_step, m_step = gm._e_step, gm._m_step

    def timed_e_step(*args, **kwargs):
        e_starts.append(time.perf_counter())
        return e_step(*args, **kwargs)

    def timed_m_step(*args, **kwargs):
        out = m_step(*args, **kwargs)
        m_ends.append(time.perf_counter())
        return out

    gm._e_step, gm._m_step = timed_e_step, timed_m_step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        meter = CpuMeter().start()
        t0 = time.perf_counter()
        gm.fit(X)
        t1 = time.perf_counter()
        cpu = meter.stop()
    loop = m_ends[n_iter - 1] - e_starts[0]
    return {"s_per_iter": loop / n_iter, "fit_s": t1 - t0, "fit_s_per_iter": (t1 - t0) / n_iter,
            "setup_s": e_starts[0] - t0, "final_e_step_s": t1 - m_ends[n_iter - 1],
            "logliks": [float(v) for v in gm.lower_bounds_], "n_iter_run": int(gm.n_iter_),
            **cpu}


def gemm_rate(k: int, chunks=(4096, 16384, 65536), min_time: float = 0.5) -> dict:
    """Best float32 rate (flop/s) of one chunk's ``E @ A`` plus ``G.T @ E`` over a few chunk sizes."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((2 * D, k)).astype(np.float32)
    best = None
    for c in chunks:
        E = rng.standard_normal((c, 2 * D)).astype(np.float32)
        G = rng.random((c, k)).astype(np.float32)
        L = np.empty((c, k), dtype=np.float32)
        S = np.empty((k, 2 * D), dtype=np.float32)
        flops = 2 * c * 2 * D * k * 2

        def both():
            np.matmul(E, A, out=L)
            np.matmul(G.T, E, out=S)

        both()
        reps = 1
        while True:  # grow the repetition count until one trial is long enough to time
            t0 = time.perf_counter()
            for _ in range(reps):
                both()
            if time.perf_counter() - t0 >= min_time / 5:
                break
            reps *= 2
        trials = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(reps):
                both()
            trials.append((time.perf_counter() - t0) / reps)
        rate = flops / min(trials)  # best trial: a floor should not count noise
        if best is None or rate > best["flops_per_s"]:
            best = {"flops_per_s": rate, "chunk": c}
    return best


def worker(config: str, n: int, k: int, iters: int, sklearn_iters: int, seed: int) -> dict:
    """Run one configuration and return what the parent prints, including peak RSS."""
    if config == "floor":
        base = rss_mb()
        meter = CpuMeter().start()
        rate = gemm_rate(k)
        out = {**meter.stop(), "s_per_iter": 8 * n * D * k / rate["flops_per_s"],
               "gflops": rate["flops_per_s"] / 1e9, "chunk": rate["chunk"], "data_mb": 0.0}
    else:
        X = make_data(n, DTYPE_OF[config], seed)
        weights, means, variances = initial_params(X, k, seed)
        if config.startswith("sklearn"):
            import sklearn.mixture  # noqa: F401  -- imported before the baseline is taken
        else:
            import acoustic_gmm.gmm._stats  # noqa: F401
        base = rss_mb()
        if config.startswith("ours"):
            out = run_ours(X, weights, means, variances, np.dtype(DTYPE_OF[config]).name, iters)
        else:
            out = run_sklearn(X, weights, means, variances, sklearn_iters)
        out["data_mb"] = X.nbytes / 2**20
    out.update(config=config, k=k, n=n, base_rss_mb=base, peak_rss_mb=peak_rss_mb())
    return out


# --------------------------------------------------------------------------- parent side

def machine_facts() -> list[str]:
    """One-line descriptions of the CPU, Python, numpy/sklearn versions and the BLAS."""
    from threadpoolctl import threadpool_info

    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        skl = metadata.version("scikit-learn")
    except metadata.PackageNotFoundError:
        skl = "not installed"
    lines = [f"machine: {os.cpu_count()} cores ({cpu}), python {platform.python_version()}, "
             f"numpy {np.__version__}, scikit-learn {skl}"]
    for info in threadpool_info():  # numpy is imported, so its BLAS is loaded and listed
        if info.get("user_api") == "blas":
            lines.append(f"BLAS: {info.get('internal_api')} {info.get('version')} "
                         f"({info.get('architecture', '?')} kernels, {info.get('num_threads')} threads, "
                         f"{Path(info.get('filepath', '')).name})")
    # These override BLAS's own CPU detection and threading, so they change the floor.
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("OPENBLAS_", "OMP_", "MKL_", "GOTO_")) and not k.endswith("PASSENV")}
    if env:
        lines.append("environment: " + " ".join(f"{k}={v}" for k, v in sorted(env.items())))
    return lines


def wait_for_quiet(max_wait: float, threshold: float = 0.1) -> float | None:
    """Wait (up to ``max_wait`` s) until other processes use under ``threshold`` of the CPUs.

    Returns the last measured share.  A busy machine is waited out rather than measured,
    since the timings would mostly measure the other work.
    """
    deadline = time.perf_counter() + max_wait
    told = False
    while True:
        meter = CpuMeter().start()
        time.sleep(1.0)
        other = meter.stop()["other_cpu"]
        if other is None or other < threshold or time.perf_counter() >= deadline:
            return other
        if not told:
            print(f"  other processes are using {100 * other:.0f}% of the CPUs; waiting up to "
                  f"{max_wait:.0f} s for them to finish...", file=sys.stderr, flush=True)
            told = True


def run_worker(config: str, k: int, args) -> dict:
    """Start one worker subprocess, wait for it, and parse its JSON line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", config, "--n", str(args.n),
           "--k", str(k), "--iters", str(args.iters), "--sklearn-iters", str(args.sklearn_iters),
           "--seed", str(args.seed)]
    if args.max_wait > 0:
        wait_for_quiet(args.max_wait)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(f"  K={k} {config}: worker failed (exit {proc.returncode})\n{proc.stderr[-2000:]}",
              file=sys.stderr)
        return {"config": config, "k": k, "failed": proc.returncode, "wall_s": wall}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    print(f"  K={k:<4d} {config:<12s} {result['s_per_iter']:8.3f} s/iter  "
          f"peak {result['peak_rss_mb']:7.0f} MB  (worker {wall:.0f} s{busy_note(result)})",
          file=sys.stderr, flush=True)
    return result


def busy_note(result: dict) -> str:
    other = result.get("other_cpu")
    return f", other processes used {100 * other:.0f}% of the CPUs" if other and other >= 0.05 else ""


def fmt(value, spec: str, width: int) -> str:
    return f"{'-':>{width}s}" if value is None else f"{value:{width}{spec}}"


def print_table(results: dict, ks, configs, args) -> None:
    """The table of times, peak memory and ratios, then the notes that explain it."""
    print(f"\nEM iteration, N={args.n:,} D={D} (diag); ratios: sklearn/this (higher is better), "
          f"this/floor (closer to 1 is better)")
    print(f"{'K':>5s}  {'config':<12s} {'s/iter':>8s} {'peak MB':>9s} {'+MB':>8s} "
          f"{'x sklearn-f64':>14s} {'x sklearn-f32':>14s} {'/ floor':>8s} {'other CPU':>10s}")
    for k in ks:
        ok = {c: r for c, r in results[k].items() if "failed" not in r}
        t = {c: r["s_per_iter"] for c, r in ok.items()}
        for c in configs:
            if c not in results[k]:
                continue
            r = results[k][c]
            if c not in ok:
                print(f"{k:5d}  {c:<12s} {'failed (exit ' + str(r['failed']) + ')':>30s}")
                continue
            ratio = lambda ref: t[ref] / t[c] if ref in t else None  # noqa: E731
            extra = r["peak_rss_mb"] - r["base_rss_mb"]
            print(f"{k:5d}  {c:<12s} {t[c]:8.3f} {r['peak_rss_mb']:9.0f} {extra:8.0f} "
                  f"{fmt(ratio('sklearn-f64'), '.1f', 14)} {fmt(ratio('sklearn-f32'), '.1f', 14)} "
                  f"{fmt(t[c] / t['floor'] if 'floor' in t else None, '.2f', 8)} "
                  f"{fmt(None if r.get('other_cpu') is None else 100 * r['other_cpu'], '.0f', 9)}%")
    print("\npeak MB: peak RSS of the worker process; +MB: peak minus the RSS after imports and "
          "data generation (data: "
          f"{args.n * D * 4 / 2**20:.0f} MB float32, {args.n * D * 8 / 2**20:.0f} MB float64).")
    print("other CPU: share of the CPUs used by other processes while this row was timed; "
          "more than a few % means the row is slowed by them.")
    print(f"ours: mean of {args.iters} iterations after 1 warm-up; sklearn: {args.sklearn_iters} "
          f"iterations of fit's EM loop.")
    # A large system-time share means page faults on fresh allocations (sklearn's N x K
    # temporaries), which vary from run to run far more than arithmetic does.
    print("CPU time, user / system s (ours: the timed iterations; sklearn: all of fit; floor: all trials):")
    for k in ks:
        cells = [f"{c} {r['user_s']:.1f}/{r['sys_s']:.1f}" for c, r in results[k].items() if "user_s" in r]
        print(f"  K={k}: " + ", ".join(cells))
    for k in ks:
        r = results[k]
        if "floor" in r and "failed" not in r["floor"]:
            f = r["floor"]
            print(f"floor K={k}: 8*N*D*K = {8 * args.n * D * k / 1e9:.1f} GFLOP at "
                  f"{f['gflops']:.0f} GFLOP/s (float32, best chunk {f['chunk']} frames)")
        for c in ("sklearn-f64", "sklearn-f32"):
            if c in r and "failed" not in r[c]:
                s = r[c]
                print(f"{c} K={k}: whole fit() {s['fit_s']:.1f} s = {s['fit_s_per_iter']:.2f} s/iter "
                      f"(set-up {s['setup_s']:.1f} s, final E-step {s['final_e_step_s']:.1f} s)")
    # Same start, same updates: the log-likelihoods after the same number of E-steps
    # should agree, which says the timed runs did the same work.
    for k in ks:
        r = {c: v for c, v in results[k].items() if "logliks" in v}
        j = min(len(v["logliks"]) for v in r.values()) - 1 if r else -1
        if j >= 0:
            vals = ", ".join(f"{c} {v['logliks'][j]:.4f}" for c, v in r.items())
            print(f"avg log-likelihood per frame at E-step {j + 1}, K={k}: {vals}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=None, help="frames (default 1,000,000)")
    p.add_argument("--k", action="append", default=None,
                   help="components; repeat or comma-separate (default 64,256)")
    p.add_argument("--iters", type=int, default=None, help="timed iterations for ours (default 10)")
    p.add_argument("--sklearn-iters", type=int, default=None, help="iterations for sklearn (default 2)")
    p.add_argument("--skip-sklearn", action="store_true", help="leave out the sklearn configurations")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: N=100,000, K=64, 2 iterations each, unless given explicitly")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-wait", type=float, default=300.0,
                   help="seconds to wait before each worker for other processes to go idle (0: don't)")
    p.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    quick = args.quick
    args.n = args.n or (100_000 if quick else 1_000_000)
    args.iters = args.iters or (2 if quick else 10)
    args.sklearn_iters = args.sklearn_iters or 2
    ks = ",".join(args.k) if args.k else ("64" if quick else "64,256")
    args.k = [int(x) for x in ks.split(",") if x.strip()]
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        # Workers import the package from this checkout even when it is not installed.
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        print(json.dumps(worker(args.worker, args.n, args.k[0], args.iters,
                                args.sklearn_iters, args.seed)))
        return
    configs = [c for c in CONFIGS if not (args.skip_sklearn and c.startswith("sklearn"))]
    for line in machine_facts():
        print(line)
    print(f"running {len(configs) * len(args.k)} workers one at a time...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    results = {k: {c: run_worker(c, k, args) for c in configs} for k in args.k}
    print_table(results, args.k, configs, args)
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
