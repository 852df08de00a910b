"""What a file of ours holds: ``acoustic-gmm info``.

:func:`describe` gives the facts of any acoustic_gmm HDF5 file (features, models, speakers, i-vector bundles) as a
JSON-ready dict, and :func:`format_description` prints them.  It reads every kind of file, so it lives in the top
library layer.
"""

from __future__ import annotations

import json
from collections import Counter

from ..gmm._files import load_models
from ..speaker._files import load_bundle, read_speaker_arrays
from ..storage._archive import FeatureArchive
from ..storage._hdf5 import FEATURES_VERSION, KINDS, RAW_FEATURES_VERSION, file_kind

__all__ = ["describe", "format_description"]


# --------------------------------------------------------------------------- describing a file

def describe(path) -> dict:
    """The facts of an acoustic_gmm HDF5 file (what ``acoustic-gmm info`` prints), JSON-ready.

    Examples
    --------
    ::

        describe("feats.h5")["utterances"]      # 3000
        describe("ubm.h5")["models"]["ubm"]     # {'n_components': 256, 'n_features': 39, ...}
    """
    kind = file_kind(path)
    if kind in ("ivector-extractor", "ivectors", "backend"):  # bundles: their arrays' shapes and the metadata
        arrays, texts, meta = load_bundle(path, kind)
        return {"path": str(path), "content": kind, "arrays": {k: list(v.shape) for k, v in arrays.items()},
                "texts": {k: len(v) for k, v in texts.items()}, "metadata": meta}
    if kind == "features":
        with FeatureArchive(path) as fa:
            return {"path": str(path), "content": "features", "format_version": fa.format_version,
                    "utterances": len(fa),
                    "frames": fa.n_frames_total, "n_features": fa.n_features, "sample_rate": fa.sample_rate,
                    "config": fa.config.to_dict(), "labels": dict(Counter(v for v in fa.labels.values() if v)),
                    "speakers": dict(Counter(v for v in fa.speakers.values() if v)),
                    "skipped": fa.skipped, "data_dir": fa.data_dir}
    if kind == "speakers":
        speakers, attrs = read_speaker_arrays(path)
        return {"path": str(path), "content": "speakers", "speakers": sorted(speakers), "ubm_id": attrs["ubm_id"],
                "adapt": attrs["adapt"], "relevance": attrs["relevance"], "metadata": json.loads(attrs["metadata"])}
    models, meta = load_models(path)
    return {"path": str(path), "content": "models", "metadata": meta,
            "models": {name: {"n_components": m.n_components, "n_features": m.n_features,
                              "covariance_type": m.covariance_type} for name, m in models.items()}}


def _counts(counts: dict, limit: int = 12) -> str:
    shown = ", ".join(f"{k} ({n})" for k, n in sorted(counts.items())[:limit])
    return f"{len(counts)}: {shown}" + (", ..." if len(counts) > limit else "")


def format_description(facts: dict) -> str:
    """:func:`describe`'s facts as the lines ``acoustic-gmm info`` prints."""
    path = facts["path"]
    if facts["content"] == "speakers":
        return (f"{path}: speakers ({facts['adapt']}, r={facts['relevance']}), UBM {facts['ubm_id']}\n"
                f"  {len(facts['speakers'])}: {', '.join(facts['speakers'][:20])}")
    if "arrays" in facts:
        meta = {k: v for k, v in facts["metadata"].items() if k != "history"}
        return "\n".join([f"{path}: {KINDS[facts['content']]}"]
                          + [f"  {k:<14}{' x '.join(map(str, shape)) or 'scalar'}" for k, shape in facts["arrays"].items()]
                          + [f"  {k:<14}{n} entries" for k, n in facts["texts"].items()]
                          + [f"  metadata    {json.dumps(meta)[:400]}"])
    lines = [f"{path}: {facts['content']}" + (f" (format {facts['format_version']})" if "format_version" in facts
                                              else "")]
    if facts["content"] == "features":
        lines.append(f"  utterances  {facts['utterances']}  ({facts['frames']:,} frames x {facts['n_features']} "
                     f"features, {facts['sample_rate']} Hz)")
        if facts["labels"]:
            lines.append(f"  labels      {_counts(facts['labels'])}")
        if facts["speakers"]:
            lines.append(f"  speakers    {_counts(facts['speakers'])}")
        skipped = facts["skipped"]
        lines.append(f"  skipped     {len(skipped)}"
                     + "".join(f"\n    {u}: {r}" for u, _, r in skipped[:5])
                     + (f"\n    ... and {len(skipped) - 5} more" if len(skipped) > 5 else ""))
        lines.append(f"  source      {facts['data_dir']}")
        if facts.get("format_version", FEATURES_VERSION) < FEATURES_VERSION:
            lines.append(f"  format      {facts['format_version']}: read one utterance at a time; "
                         f"'acoustic-gmm convert {path} --out NEW.h5' rewrites it in format {FEATURES_VERSION}")
        lines.append("  config      " + " ".join(f"{k}={v}" for k, v in facts["config"].items()))
        if facts.get("format_version") == RAW_FEATURES_VERSION:
            lines.append("  normalised  when read (cmvn and vad above are the default view; train and ubm take "
                         "--cmvn, --vad, --n-mfcc, --deltas)")
        return "\n".join(lines)
    for name, m in list(facts["models"].items())[:20]:
        lines.append(f"  {name}: {m['n_components']} components x {m['n_features']} features ({m['covariance_type']})")
    if len(facts["models"]) > 20:
        lines.append(f"  ... {len(facts['models']) - 20} more models")
    lines.append(f"  metadata    {json.dumps(facts['metadata'])}")
    return "\n".join(lines)
