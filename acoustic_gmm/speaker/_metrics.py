"""Detection metrics of labelled scores: error rates, EER, minDCF and DET curves.

Examples
--------
>>> import numpy as np
>>> round(eer(np.array([3.0, 2.0, 0.5]), np.array([1.0, 0.0, -1.0])), 3)
0.333
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError, ParameterError
from ..storage._outputs import save_png

__all__ = ["eer", "min_dcf", "det_png", "verification_metrics"]


def verification_metrics(scores, targets) -> dict:
    """EER and minDCF (p_target 0.01 and 0.001) of scores with target/non-target labels."""
    targets = np.asarray(targets, dtype=bool)
    tar, non = np.asarray(scores)[targets], np.asarray(scores)[~targets]
    if len(tar) == 0 or len(non) == 0:
        raise DataError(f"the trials are all {'non-target' if len(tar) == 0 else 'target'} "
                        f"({len(scores)} trials): EER and minDCF are undefined")
    return {"eer": eer(tar, non), "min_dcf_0.01": min_dcf(tar, non, 0.01), "min_dcf_0.001": min_dcf(tar, non, 0.001),
            "n_target": int(len(tar)), "n_nontarget": int(len(non))}


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
    save_png(fig, path)
