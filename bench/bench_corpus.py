"""A UBM on corpora of thousands of short utterances, as a user trains it.

Two corpora: FSDD's 3,000 recordings as they are (8 kHz, 39 features per frame, K = 64), and the real-corpus
shape made from FSDD by ``bench_features.make_16k_corpus``: every recording resampled to 16 kHz and repeated
to fill exactly one second, each take used several times with a different start (``--copies``, 3,000 x 3 =
9,000 files by default), written as 16-bit WAV with a data directory; features are 20 MFCC + deltas + delta-deltas
(60 per frame, per-utterance CMN), extracted once by ``acoustic-gmm features``.  Then, side by side in
one run, on the same frames:

* ``in memory``  -- ``GMM(K).fit(X)`` on the frames already in an array (the engine alone, warm), and
                    the same with plain EM (``overrelax=1``) to show what over-relaxation saves;
* ``archive``    -- ``GMM(K).fit(path)``: frames read from the archive once (they fit the memory budget);
* ``streamed``   -- ``GMM(K, max_memory=0).fit(path)``: every EM pass goes through the archive again
                    (memory-mapped, from the page cache), the path a corpus larger than the budget takes;
* ``cli, cold``  -- ``acoustic-gmm ubm feats.h5 -k K`` as a new process, beside the in-memory fit plus
                    the start-up a new process pays (imports, opening the archive, loading the compiled
                    kernels: a new process fitting a tiny GMM);
* ``sklearn``    -- ``GaussianMixture(K, covariance_type="diag")`` with its defaults (k-means init,
                    tol 1e-3), on the same in-memory frames.

K = 64 (FSDD) and 128 (16 kHz) run every fit to convergence (tol 1e-3).  K = 1,024 runs a fixed number of EM iterations from
the same start, so the rows compare seconds per iteration.  The streamed and archive fits must give
exactly the in-memory model.  Run from the repository root::

    .venv/bin/python bench/bench_corpus.py [--data ../shared/data/fsdd] [--copies 3] [--work /tmp/agmm_corpus]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from acoustic_gmm import GMM  # noqa: E402
from acoustic_gmm.storage import FeatureArchive  # noqa: E402

CLI = [str(Path(sys.executable).with_name("acoustic-gmm"))]


def make_corpus(fsdd: Path, work: Path, copies: int) -> Path:
    """``work/data``: a data directory of ``copies`` x 3,000 one-second 16 kHz files (reused if present)."""
    from bench_features import make_16k_corpus

    data = work / "data"
    if (data / "wav.scp").exists():
        return data
    paths = sorted(str(p) for p in (fsdd / "recordings").glob("*.wav"))
    wavs = make_16k_corpus(paths, work / "audio", copies * len(paths))
    data.mkdir(exist_ok=True)
    for name, column in (("wav.scp", None), ("utt2spk", 1), ("utt2label", 0)):  # {digit}_{speaker}_{take}_{copy}
        (data / name).write_text("".join(f"{w.stem} {w.resolve() if column is None else w.stem.split('_')[column]}\n"
                                         for w in sorted(wavs)))
    return data


def timed(fn, repeat: int = 1):
    """Median wall time of ``repeat`` calls, and the last result."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def cold(cmd, repeat: int = 1) -> float:
    return timed(lambda: subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL), repeat)[0]


def fsdd_data(fsdd: Path, work: Path) -> Path:
    """``work/fsdd``: a data directory of the 3,000 FSDD recordings as they are (8 kHz, 0.1-2.3 s)."""
    data = work / "fsdd"
    data.mkdir(parents=True, exist_ok=True)
    paths = sorted((fsdd / "recordings").glob("*.wav"))
    (data / "wav.scp").write_text("".join(f"{p.stem} {p.resolve()}\n" for p in paths))
    (data / "utt2spk").write_text("".join(f"{p.stem} {p.stem.split('_')[1]}\n" for p in paths))
    return data


def ubm_rows(feats: Path, k: int, work: Path, sklearn: bool, repeat: int = 1) -> None:
    """EM to convergence at ``k`` components: in memory, read once, streamed, the cold CLI, scikit-learn.

    With ``repeat`` > 1 the three in-process fits take turns, ``repeat`` rounds, and each row gives its
    median time and the median over rounds of its ratio to that round's in-memory fit: a few-second fit
    moves by +-20 % from one run to the next on this machine, and pairing cancels the drift.
    """
    with FeatureArchive(feats) as fa:
        X = fa.frames()
    print(f"\nK = {k}, EM to convergence (tol 1e-3), {X.shape[0]:,} x {X.shape[1]}   seconds   iterations   "
          f"vs in memory" + (f" (median of {repeat} rounds)" if repeat > 1 else ""))
    GMM(8, max_iter=2).fit(X[:20000])  # warm: kernels loaded, threads started (a new process pays it in start-up)
    fits = [("in memory (warm engine)", lambda: GMM(k).fit(X)),
            ("archive, read once", lambda: GMM(k).fit(feats)),
            ("archive, streamed every pass", lambda: GMM(k, max_memory=0).fit(feats))]
    times = np.zeros((repeat, len(fits)))
    models = [None] * len(fits)
    for r in range(repeat):
        for j, (_, fit) in enumerate(fits):
            times[r, j], models[j] = timed(fit)
    for (name, _), g in zip(fits[1:], models[1:]):
        assert np.array_equal(g.means_, models[0].means_), f"{name}: a different model"
    t_mem, g_mem = float(np.median(times[:, 0])), models[0]
    for j, ((name, _), g) in enumerate(zip(fits, models)):
        print(f"  {name:<46} {np.median(times[:, j]):7.1f}   {len(g.history_):10d}   "
              f"{np.median(times[:, j] / times[:, 0]):10.2f}x")
    # what a new process pays before EM: imports, opening the archive, loading the compiled kernels, threads
    startup = cold([sys.executable, "-W", "ignore", "-c", "import numpy as np; from acoustic_gmm import cli, GMM; from acoustic_gmm.speaker import _gmm_ubm; "
                    "from acoustic_gmm.storage import FeatureArchive; "
                    f"FeatureArchive({str(feats)!r}).close(); "
                    f"GMM(2, max_iter=1).fit(np.random.default_rng(0).normal(size=(5000, {X.shape[1]})))"], repeat)
    out = work / f"ubm{k}.h5"

    def cli_ubm(extra):
        out.unlink(missing_ok=True)
        subprocess.run(CLI + ["ubm", str(feats), "-k", str(k), "--out", str(out)] + extra, check=True,
                       stdout=subprocess.DEVNULL)

    clis = [timed(lambda: cli_ubm(extra), repeat)[0] for extra in ([], ["--max-memory", "0"])]
    print(f"  cli, cold: acoustic-gmm ubm -k {k:<16} {clis[0]:7.1f}                "
          f"{clis[0] / (t_mem + startup):.2f}x the in-memory fit + start-up ({t_mem:.1f} + {startup:.1f} s)")
    print(f"  cli, cold, --max-memory 0 (streamed)           {clis[1]:7.1f}                "
          f"{clis[1] / (t_mem + startup):.2f}x")
    t_plain, plain = timed(lambda: GMM(k, overrelax=1).fit(X))
    print(f"  in memory, plain EM (overrelax=1)              {t_plain:7.1f}   {len(plain.history_):10d}   "
          f"{t_plain / t_mem:10.2f}x  (avg log-lik {plain.score(X):.3f}; over-relaxed {g_mem.score(X):.3f})")
    if sklearn:
        from sklearn.mixture import GaussianMixture

        t_sk, sk = timed(lambda: GaussianMixture(k, covariance_type="diag", random_state=0).fit(X))
        print(f"  scikit-learn GaussianMixture({k}, diag)         {t_sk:7.1f}   {sk.n_iter_:10d}   "
              f"{t_sk / t_mem:10.2f}x; the cold CLI is {t_sk / clis[0]:.1f}x faster "
              f"(avg log-lik: sklearn {sk.score(X):.3f}, ours {g_mem.score(X):.3f})")


def big_rows(feats: Path, k: int, n: int, sklearn: bool) -> None:
    """``n`` EM iterations at ``k`` components from the same start: seconds per iteration."""
    from acoustic_gmm.gmm import _update as em

    with FeatureArchive(feats) as fa:
        X = fa.frames()
        print(f"\nK = {k}, {n} EM iterations from the same start            seconds   s/iteration   vs in memory")
        start = GMM(k, init="random", random_state=0, max_iter=1, tol=0).fit(X[::20]).model_

        def em_from(source):
            model = start
            for _ in range(n):
                model, _ = em.em_step(model, source)
            return model

        t_mem, m_mem = timed(lambda: em_from(X))
        t_st, m_st = timed(lambda: em_from(fa))
    assert np.array_equal(m_st.means, m_mem.means)
    print(f"  {'in memory':<50} {t_mem:7.1f}   {t_mem / n:11.2f}   {1:10.2f}x")
    print(f"  {'archive, streamed every pass':<50} {t_st:7.1f}   {t_st / n:11.2f}   {t_st / t_mem:10.2f}x")
    if sklearn:
        from sklearn.mixture import GaussianMixture

        sk = GaussianMixture(k, covariance_type="diag", max_iter=n, tol=0, init_params="random_from_data",
                             random_state=0)
        t_sk, _ = timed(lambda: sk.fit(X))
        print(f"  {'scikit-learn (random_from_data init)':<50} {t_sk:7.1f}   {t_sk / n:11.2f}   {t_sk / t_mem:10.2f}x")


def gselect_rows(feats: Path, k: int, n: int) -> None:
    """``n`` EM iterations at ``k`` components from the same start, the dense E-step beside Gaussian selection
    (``gselect``: each frame's 30 best components, chosen again every few iterations), on nine tenths of the
    utterances; both final models scored exactly on the tenth held out."""
    from acoustic_gmm.gmm import GSELECT_TOP, History, run_em, variance_floor
    from acoustic_gmm.gmm._stats import global_mean_var, global_stats

    with FeatureArchive(feats) as fa:
        held = fa.ids[::10]
        X = fa.frames([u for i, u in enumerate(fa.ids) if i % 10])
        test = fa.frames(held)
    floor = variance_floor(global_mean_var(global_stats(X))[1], 1e-3)
    start = GMM(k, init="random", random_state=0, max_iter=1, tol=0).fit(X[::20]).model_
    print(f"\nK = {k}, {n} EM iterations from the same start on {len(X):,} frames   seconds   s/iteration   "
          f"held-out nats/frame")
    rows = {}
    for name, gselect in (("dense E-step", None), (f"Gaussian selection (top {GSELECT_TOP})", GSELECT_TOP)):
        t, model = timed(lambda: run_em(start, X, floor=floor, n_iter=n, tol=-1.0, history=History(),
                                        gselect=gselect)[0])
        rows[name] = (t, float(model.score_samples(test).mean()))
        print(f"  {name:<58} {t:7.1f}   {t / n:11.2f}   {rows[name][1]:10.4f}")
    (t_d, ll_d), (t_s, ll_s) = rows.values()
    speed, gap = t_d / t_s, ll_d - ll_s
    verdict = "ok" if speed >= 2 and abs(gap) <= 0.01 else "MISSED"
    print(f"  selection {speed:.1f}x faster per iteration (target >= 2x), held-out log-likelihood {gap:+.4f} nats/frame "
          f"from the dense fit's (target within 0.01): {verdict}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/fsdd")
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--work", default="/tmp/agmm_corpus")
    ap.add_argument("--big-iters", type=int, default=5, help="EM iterations at K=1024")
    ap.add_argument("--gselect-k", type=int, default=2048, help="components of the Gaussian-selection rows")
    ap.add_argument("--gselect-iters", type=int, default=10)
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--only", choices=["fsdd", "16k", "big", "gselect"], help="run one part only")
    args = ap.parse_args()
    work = Path(args.work)
    warnings.simplefilter("ignore")
    sklearn = not args.skip_sklearn
    if args.only in (None, "fsdd"):
        feats = work / "fsdd.h5"
        if not feats.exists():
            cold(CLI + ["features", str(fsdd_data(Path(args.data), work)), "--out", str(feats), "--cmvn", "mean"])
        print("FSDD: 3,000 recordings at 8 kHz, 13 MFCC + deltas + delta-deltas (39 per frame), CMN")
        ubm_rows(feats, 64, work, sklearn, repeat=7)  # a few seconds each: paired rounds against the noise
    feats = work / "feats.h5"
    if not feats.exists():
        data = make_corpus(Path(args.data), work, args.copies)
        t = cold(CLI + ["features", str(data), "--out", str(feats), "--n-mfcc", "20", "--cmvn", "mean"])
        print(f"features (cold CLI, once): {t:.1f} s")
    if args.only in (None, "16k"):
        print(f"\n16 kHz corpus: {3000 * args.copies:,} one-second files made from FSDD, 20 MFCC + deltas + "
              f"delta-deltas (60 per frame), CMN")
        ubm_rows(feats, 128, work, sklearn, repeat=3)
    if args.only in (None, "big"):
        big_rows(feats, 1024, args.big_iters, sklearn)
    if args.only in (None, "gselect"):
        gselect_rows(feats, args.gselect_k, args.gselect_iters)
    print(f"\n(threads: {len(os.sched_getaffinity(0))} cores)")


if __name__ == "__main__":
    main()
