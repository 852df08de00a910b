"""GMM-UBM speaker verification (Reynolds, Quatieri & Dunn, 2000).

* a universal background model (UBM): one large diagonal GMM of many speakers' frames;
* speakers enrolled by MAP adaptation of the UBM (means; optionally weights and variances),
  relevance factor ``r``: a component moves towards a speaker's data in proportion to
  ``n_k / (n_k + r)``, its occupancy ``n_k`` in the enrolment frames;
* a trial's score: the average per-frame log-likelihood ratio between the speaker's model and
  the UBM, exactly or over each frame's top-C UBM components (chosen once per test utterance
  and shared by every model it is scored against);
* z-, t- and s-norm against an impostor cohort; EER, minDCF and DET curves.

Speaker models are stored compactly (only what was adapted) with an identifier of their UBM.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .em import accumulate
from .errors import ArchiveError, DataError, ParameterError, check_frames
from .gmm import DiagGMM, log_normalize

ADAPT = ("m", "mw", "mwv")


def ubm_id(ubm: DiagGMM) -> str:
    """A short fingerprint of a UBM's parameters: speaker models name the UBM they came from."""
    h = hashlib.sha1()
    for a in (ubm.weights, ubm.means, ubm.variances):
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- enrolment

@dataclass
class Enrolled:
    """A MAP-adapted speaker: what was adapted (means always), and the enrolment occupancy."""

    means: np.ndarray
    weights: np.ndarray | None = None
    variances: np.ndarray | None = None
    n_frames: int = 0
    occupancy: np.ndarray | None = None  # per UBM component

    def model(self, ubm: DiagGMM) -> DiagGMM:
        return DiagGMM(ubm.weights if self.weights is None else self.weights, self.means,
                       ubm.variances if self.variances is None else self.variances, dtype=ubm.dtype)


def map_adapt(ubm: DiagGMM, frames, relevance: float = 16.0, adapt: str = "m") -> Enrolled:
    """MAP-adapt the UBM to one speaker's frames (one array, or a list of utterances).

    ``relevance`` -> infinity returns the UBM; ``relevance = 0`` gives the maximum-likelihood
    means of the frames under the UBM's responsibilities.
    """
    if adapt not in ADAPT:
        raise ParameterError(f"adapt must be one of {list(ADAPT)}, got {adapt!r}")
    if not relevance >= 0:
        raise ParameterError(f"relevance must be >= 0, got {relevance!r}")
    parts = frames if isinstance(frames, (list, tuple)) else [frames]
    X = np.concatenate([check_frames(x, n_features=ubm.n_features, what="enrolment frames") for x in parts])
    stats = accumulate(ubm, X)  # one pass over all utterances: per-utterance calls cost more than the arithmetic
    n = stats.occ
    safe = np.maximum(n, 1e-10)[:, None]
    ex = stats.sum_x / safe + stats.shift                     # E[x] under each component
    alpha = (n / (n + relevance))[:, None] if np.isfinite(relevance) else np.zeros((len(n), 1))
    means = alpha * ex + (1 - alpha) * ubm.means
    out = Enrolled(means, n_frames=stats.n_frames, occupancy=n)
    if "w" in adapt:
        w = alpha[:, 0] * n / stats.n_frames + (1 - alpha[:, 0]) * ubm.weights
        out.weights = w / w.sum()
    if "v" in adapt:
        ex2 = stats.sum_xx / safe + 2 * stats.shift * (stats.sum_x / safe) + stats.shift ** 2  # E[x^2]
        var = alpha * ex2 + (1 - alpha) * (ubm.variances + ubm.means ** 2) - means ** 2
        out.variances = np.maximum(var, ubm.variances.min(0) * 1e-2)
    return out


# --------------------------------------------------------------------------- scoring

class Scorer:
    """LLR scores of test utterances against enrolled speakers, exact or over top-C UBM components.

    Every model's components are written as a projection of ``[x - c, (x - c)^2]`` (``c`` the
    UBM's centre), so exact scoring is one matrix product for all models and components, and
    top-C scoring is one product per UBM component, over only the frames that chose it.
    """

    def __init__(self, ubm: DiagGMM, speakers: dict[str, Enrolled]):
        self.ubm, self.names = ubm, sorted(speakers)
        self.index = {s: i for i, s in enumerate(self.names)}
        A, b = zip(*(speakers[s].model(ubm).projection(ubm.offset) for s in self.names))
        self.A = np.ascontiguousarray(np.stack(A).transpose(0, 2, 1), dtype=np.float32)   # (N, K, 2D)
        self.b = np.stack(b).astype(np.float32)                                           # (N, K)

    def score_many(self, utterances, top_c: int | None = 5, chunk: int = 4096) -> np.ndarray:
        """Average per-frame LLR of each utterance against every model: (U, N)."""
        utts = [check_frames(u, n_features=self.ubm.n_features, what=f"test utterance {i}")
                for i, u in enumerate(utterances)]
        lengths = np.array([len(u) for u in utts])
        X = np.concatenate(utts).astype(np.float32)
        owner = np.repeat(np.arange(len(utts)), lengths)
        N, K, _ = self.A.shape
        totals = np.zeros((len(utts), N))
        A2 = self.A.reshape(N * K, -1)
        exact = top_c is None or top_c >= K
        # bound the (frames x models x components) block: about 32 M values
        chunk = max(16, min(chunk, (1 << 25) // (N * (K if exact else top_c))))
        for a in range(0, len(X), chunk):
            E = self.ubm.expand(X[a:a + chunk])
            L = self.ubm.log_joint(X[a:a + chunk], E)
            ubm_ll = log_normalize(L.copy())
            if exact:
                S = (E @ A2.T).reshape(len(E), N, K) + self.b
                S = S.transpose(0, 2, 1)                                # (n, K, N)
            else:
                sel = np.argpartition(L, -top_c, axis=1)[:, -top_c:]   # (n, C): the UBM's best components
                S = np.empty((len(E), top_c, N), dtype=np.float32)
                order = np.argsort(sel, axis=None, kind="stable")
                ks = sel.ravel()[order]
                bounds = np.flatnonzero(np.diff(ks)) + 1
                for idx in np.split(order, bounds):
                    k = sel.flat[idx[0]]
                    rows, cols = np.divmod(idx, top_c)
                    S[rows, cols] = E[rows] @ self.A[:, k, :].T + self.b[:, k]
            top = S.max(1, keepdims=True)
            spk_ll = top[:, 0] + np.log(np.exp(S - top).sum(1))         # (n, N)
            llr = spk_ll - ubm_ll[:, None]
            who = owner[a:a + chunk]
            starts = np.r_[0, np.flatnonzero(np.diff(who)) + 1]
            totals[who[starts]] += np.add.reduceat(llr, starts, axis=0)
        return totals / lengths[:, None]

    def score(self, frames, models=None, top_c: int | None = 5) -> np.ndarray:
        """Average per-frame LLR of one utterance against ``models`` (names; default all)."""
        scores = self.score_many([frames], top_c)[0]
        return scores if models is None else scores[[self.index[m] for m in models]]


# --------------------------------------------------------------------------- storage

def save_speakers(path, speakers: dict[str, Enrolled], ubm: DiagGMM, adapt: str, relevance: float,
                  metadata: dict | None = None) -> None:
    """Speaker models in one HDF5 file: only the adapted arrays, plus their UBM's identifier."""
    from .archive import FORMAT_VERSION, atomic_h5

    with atomic_h5(path) as f:
        f.attrs.update(format_version=FORMAT_VERSION, content="speakers", ubm_id=ubm_id(ubm), adapt=adapt,
                       relevance=relevance, metadata=json.dumps(metadata or {}))
        for name, e in speakers.items():
            g = f.create_group(f"speakers/{name}")
            g.attrs["n_frames"] = e.n_frames
            for key in ("means", "weights", "variances", "occupancy"):
                if getattr(e, key) is not None:
                    g.create_dataset(key, data=getattr(e, key))


def load_speakers(path, ubm: DiagGMM | None = None) -> tuple[dict[str, Enrolled], dict]:
    """Read speaker models; with ``ubm``, check they were adapted from it."""
    from .archive import open_h5

    with open_h5(path, "speaker model file", ArchiveError) as f:
        if f.attrs.get("content") != "speakers":
            raise ArchiveError(f"{path}: not an acoustic_gmm speaker model file (enrol with 'acoustic-gmm enroll')")
        info = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
        speakers = {name: Enrolled(**{k: g[k][()] for k in ("means", "weights", "variances", "occupancy") if k in g},
                                   n_frames=int(g.attrs["n_frames"])) for name, g in f["speakers"].items()}
    if ubm is not None:
        require_ubm(path, info, ubm)
    return speakers, info


def require_ubm(path, info: dict, ubm: DiagGMM) -> None:
    """Raise unless the speakers described by ``info`` (from :func:`load_speakers`) were adapted from ``ubm``."""
    if info["ubm_id"] != ubm_id(ubm):
        raise ArchiveError(f"{path}: speakers were adapted from UBM {info['ubm_id']}, not from the given UBM "
                           f"{ubm_id(ubm)}")


# --------------------------------------------------------------------------- normalisation

def znorm(scores: np.ndarray, impostor: np.ndarray) -> np.ndarray:
    """z-norm: each model's scores standardised by its scores on impostor utterances.

    ``scores`` (M, U), ``impostor`` (M, I): model m against impostor utterance i.
    """
    return (scores - impostor.mean(1, keepdims=True)) / impostor.std(1, keepdims=True)


def tnorm(scores: np.ndarray, cohort: np.ndarray) -> np.ndarray:
    """t-norm: each test utterance's scores standardised by its scores against cohort models.

    ``scores`` (M, U), ``cohort`` (C, U): cohort model c against test utterance u.
    """
    return (scores - cohort.mean(0, keepdims=True)) / cohort.std(0, keepdims=True)


def snorm(scores, impostor, cohort) -> np.ndarray:
    """s-norm: the average of the z- and t-normalised scores."""
    return 0.5 * (znorm(scores, impostor) + tnorm(scores, cohort))


# --------------------------------------------------------------------------- metrics

def error_rates(target, nontarget):
    """Miss and false-alarm rates at every threshold between the sorted scores."""
    target, nontarget = np.asarray(target, float), np.asarray(nontarget, float)
    if len(target) == 0 or len(nontarget) == 0:
        raise DataError(f"EER needs target and non-target trials; got {len(target)} target and "
                        f"{len(nontarget)} non-target")
    scores = np.concatenate([target, nontarget])
    labels = np.concatenate([np.ones(len(target)), np.zeros(len(nontarget))])
    order = np.argsort(scores, kind="mergesort")
    labels = labels[order]
    # threshold just above the i-th lowest score: misses are targets at or below it
    p_miss = np.concatenate([[0], np.cumsum(labels)]) / len(target)
    p_fa = 1 - np.concatenate([[0], np.cumsum(1 - labels)]) / len(nontarget)
    return p_miss, p_fa


def eer(target, nontarget) -> float:
    """Equal error rate: where the miss and false-alarm curves cross (linearly interpolated)."""
    p_miss, p_fa = error_rates(target, nontarget)
    i = int(np.argmax(p_miss >= p_fa))
    if i == 0:
        return float(p_miss[0])
    # the curves cross between points i-1 and i
    d0, d1 = p_fa[i - 1] - p_miss[i - 1], p_fa[i] - p_miss[i]
    t = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float(p_miss[i - 1] + t * (p_miss[i] - p_miss[i - 1]))


def min_dcf(target, nontarget, p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Minimum normalised detection cost (NIST): min over thresholds, divided by the best trivial cost."""
    p_miss, p_fa = error_rates(target, nontarget)
    cost = c_miss * p_target * p_miss + c_fa * (1 - p_target) * p_fa
    return float(cost.min() / min(c_miss * p_target, c_fa * (1 - p_target)))


def det_png(curves: dict, path) -> None:
    """DET curves (probit axes) of ``{name: (target, nontarget)}`` to a PNG (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from scipy.stats import norm
    except ImportError:
        raise ParameterError("DET plots need matplotlib: pip install 'acoustic-gmm[plot]'") from None
    ticks = np.array([0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4])
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (tar, non) in curves.items():
        pm, pf = error_rates(tar, non)
        eps = 0.5 / (len(tar) + len(non))
        ax.plot(norm.ppf(np.clip(pf, eps, 1 - eps)), norm.ppf(np.clip(pm, eps, 1 - eps)),
                label=f"{name} (EER {100 * eer(tar, non):.2f} %)")
    ax.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    ax.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    lim = norm.ppf([0.0005, 0.5])
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_xlabel("false alarm rate (%)")
    ax.set_ylabel("miss rate (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- trials

@dataclass
class Trials:
    """Kaldi-style trials: ``model utterance target|nontarget`` per line."""

    models: list[str] = field(default_factory=list)
    utterances: list[str] = field(default_factory=list)
    targets: list[bool | None] = field(default_factory=list)

    @classmethod
    def read(cls, path) -> "Trials":
        t = cls()
        for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("target", "nontarget")):
                raise DataError(f"{path}:{lineno}: expected 'model utterance [target|nontarget]', got {line!r}")
            t.models.append(parts[0])
            t.utterances.append(parts[1])
            t.targets.append(None if len(parts) == 2 else parts[2] == "target")
        if not t.models:
            raise DataError(f"{path}: no trials")
        return t


def read_scores(path) -> tuple[list[tuple[str, str]], np.ndarray]:
    """A Kaldi score file (``model utterance score`` per line)."""
    pairs, values = [], []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) != 3:
                raise ValueError
            values.append(float(parts[2]))
        except ValueError:
            raise DataError(f"{path}:{lineno}: expected 'model utterance score', got {line!r}") from None
        if not np.isfinite(values[-1]):
            raise DataError(f"{path}:{lineno}: score is not finite: {line!r}")
        pairs.append((parts[0], parts[1]))
    if not pairs:
        raise DataError(f"{path}: no scores")
    return pairs, np.array(values)


def score_trials(scorer: Scorer, trials: Trials, archive, top_c: int | None = 5) -> np.ndarray:
    """One score per trial; every test utterance is scored once against all models."""
    unknown_models = sorted(set(trials.models) - set(scorer.names))
    if unknown_models:
        raise DataError(f"{len(unknown_models)} trial model(s) are not enrolled: {', '.join(unknown_models[:5])}"
                        + (", ..." if len(unknown_models) > 5 else ""))
    utts = list(dict.fromkeys(trials.utterances))
    missing = [u for u in utts if u not in archive]
    if missing:
        raise DataError(f"{len(missing)} trial utterance(s) are not in {archive.path}: {', '.join(missing[:5])}"
                        + (", ..." if len(missing) > 5 else ""))
    S = scorer.score_many([archive[u] for u in utts], top_c)
    row = {u: i for i, u in enumerate(utts)}
    return np.array([S[row[u], scorer.index[m]] for m, u in zip(trials.models, trials.utterances)])


def normalise_trials(trials: Trials, raw: np.ndarray, norm: str, z_stats=None, t_stats=None) -> np.ndarray:
    """Apply z/t/s-norm per trial from ``{model: (mean, std)}`` and ``{utterance: (mean, std)}`` statistics."""
    z = t = None
    if norm in ("z", "s"):
        z = np.array([(x - z_stats[m][0]) / z_stats[m][1] for x, m in zip(raw, trials.models)])
    if norm in ("t", "s"):
        t = np.array([(x - t_stats[u][0]) / t_stats[u][1] for x, u in zip(raw, trials.utterances)])
    return {"z": z, "t": t, "s": None if z is None or t is None else 0.5 * (z + t)}[norm]


def verification_metrics(scores, targets) -> dict:
    """EER and minDCF (p_target 0.01 and 0.001) of scores with target/non-target labels."""
    targets = np.asarray(targets, dtype=bool)
    tar, non = np.asarray(scores)[targets], np.asarray(scores)[~targets]
    if len(tar) == 0 or len(non) == 0:
        raise DataError(f"the trials are all {'non-target' if len(tar) == 0 else 'target'} "
                        f"({len(scores)} trials): EER and minDCF are undefined")
    return {"eer": eer(tar, non), "min_dcf_0.01": min_dcf(tar, non, 0.01), "min_dcf_0.001": min_dcf(tar, non, 0.001),
            "n_target": int(len(tar)), "n_nontarget": int(len(non))}
