"""Features and models to and from other toolkits: the workflows of ``acoustic-gmm export``, ``import``,
``export-model`` and ``import-model`` over ``_kaldi``, ``_htk_params`` and ``_htk_mmf``.

The feature workflows write under the package's one output policy (:func:`acoustic_gmm.storage.writing`:
nothing replaced unasked, no input overwritten, the output locked while it is written; an HTK export goes
to a folder, which must be new, empty or ``overwrite``-able) and call the format's module; for the model
workflows the command line applies the same policy.

Examples
--------
::

    export_features("feats.h5", "kaldi/feats.ark", fmt="kaldi")       # + kaldi/feats.scp
    import_features("kaldi/feats.scp", "data/train", "train.h5", fmt="kaldi")
    export_model("ubm.h5", "ubm.txt", fmt="kaldi")                    # then: gmm-global-copy ubm.txt final.dubm
    import_model("hmm.mmf", "gmm.h5", fmt="htk", name="gmm")
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelFileError, ParameterError
from ..storage._outputs import writing

__all__ = ["export_features", "import_features", "export_model", "import_model"]


FORMATS = ("kaldi", "htk")


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ParameterError(f"format must be one of {list(FORMATS)}, got {fmt!r}")


def export_features(archive, out, *, fmt: str, ids=None, compress: bool = False, overwrite: bool = False) -> str:
    """Kaldi: ``out`` is the ark, its .scp goes beside it; HTK: ``out`` is a folder of ``<utt>.htk`` files
    (an existing non-empty folder needs ``overwrite``).  Returns what was written, in words."""
    _check_format(fmt)
    out = Path(out)
    if fmt == "kaldi":
        from ._kaldi import export_kaldi as run

        scp = out.with_suffix(".scp")
        with writing({out: "out", scp: "the .scp beside out"}, [archive], overwrite=overwrite):
            n = run(archive, out, ids=ids)
        return f"{out} and {scp}: {n} utterance(s)"
    from ._htk_params import export_htk as run

    with writing({out: "out"}, [archive], overwrite=overwrite, folders=[out]):
        n = run(archive, out, ids=ids, compress=compress)
    return f"{out}/: {n} HTK parameter file(s)"


def import_features(listing, data_dir, out, *, fmt: str, sample_rate: int | None = None, config=None,
                    overwrite: bool = False):
    """A feature archive from Kaldi features (a feats.scp or ark) or HTK parameter files (a list), with
    ``data_dir``'s speakers and labels; returns the :class:`~acoustic_gmm.interop.ImportReport`."""
    _check_format(fmt)
    if fmt == "kaldi":
        from ._kaldi import import_kaldi as run
    else:
        from ._htk_params import import_htk as run
    with writing({out: "out"}, [listing], overwrite=overwrite):
        return run(listing, data_dir, out, config=config, sample_rate=sample_rate, overwrite=overwrite)


def export_model(model_path, out, *, fmt: str, name: str | None = None) -> None:
    """Write the diagonal GMM ``name`` of ``model_path`` as Kaldi DiagGmm text or an HTK MMF."""
    from ..gmm._estimator import GMM

    _check_format(fmt)
    model = GMM.load(model_path, name=name).model_
    if model.covariance_type != "diag":
        raise ModelFileError(f"{model_path}: a full-covariance GMM; Kaldi's DiagGmm and this MMF writer take "
                             f"diagonal ones")
    if fmt == "kaldi":
        from ._kaldi import write_diag_gmm

        write_diag_gmm(out, model.weights, model.means, model.variances)
    else:
        from ._htk_mmf import write_mmf

        write_mmf(out, model.weights, model.means, model.variances, name=name or Path(model_path).stem)


def import_model(path, out, *, fmt: str, name: str | None = None):
    """Read a Kaldi DiagGmm (text) or a GMM state of an HTK MMF and write it as an acoustic_gmm model file
    (named ``name``, default ``gmm``); returns the model."""
    from ..gmm._files import save_models
    from ..gmm._model import DiagGMM

    _check_format(fmt)
    if fmt == "kaldi":
        from ._kaldi import read_diag_gmm

        w, m, v = read_diag_gmm(path)
    else:
        from ._htk_mmf import read_mmf

        w, m, v, _ = read_mmf(path, name)
    model = DiagGMM(w, m, v, dtype="float32")
    save_models(out, {name or "gmm": model}, metadata={"imported_from": str(path), "format": fmt})
    return model
