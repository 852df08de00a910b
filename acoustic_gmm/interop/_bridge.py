"""Features computed by other toolkits, into acoustic_gmm feature archives with a data directory's labels.

:func:`import_matrices` is what :func:`acoustic_gmm.interop.import_features` (Kaldi ark/scp) and
:func:`acoustic_gmm.interop.import_features` (HTK parameter files) share once they have read ``(utterance id,
matrix)`` entries: every matrix checked, each utterance matched to the data directory's speaker and
label, utterances of the data directory without features skipped and listed, and an archive written (by
:func:`acoustic_gmm.storage.write_features`: atomically) whose configuration says what is known of the
front end.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import DataError, ParameterError

__all__ = ["ImportReport"]


class ImportReport(NamedTuple):
    """What an import did: the archive written, its utterance count, and the utterances of the
    data directory that had no features (skipped; also in the archive's ``skipped`` list)."""

    out: Path
    n_utterances: int
    missing: list


def import_matrices(entries, src, data_dir, out, *, config=None, sample_rate: int | None = None,
                    manifest: dict | None = None, computed_by: str = "", hop_ms: float | None = None) -> ImportReport:
    """Write the feature archive ``out`` from ``(utt, matrix)`` ``entries`` read from ``src``.

    Parameters
    ----------
    entries : iterator of (str, ndarray (n_frames, n_features))
        The features, in the order they are to be stored.
    src : path
        Where they come from (named in errors and in the skipped list).
    data_dir : DataDir
        The data directory (:func:`acoustic_gmm.storage.read_data_dir`) that gives speakers and labels;
        every utterance of ``entries`` must be one of its.
    out : path
        The archive to write.
    config : MfccConfig, optional
        The front end, if one describes it (its ``n_features`` must be the matrices' width); default: one
        that says only the width, no deltas and no normalisation, and ``computed_by``: models trained on
        the archive then refuse to compute frames from audio (our front end is not the one that made these).
    sample_rate : int, optional
        Recorded in the archive; default ``config.sample_rate``, else read from the first utterance's audio.
    manifest : dict, optional
        Text tables to keep in the archive's manifest (default: the data directory's).
    computed_by : str
        Who computed the features (``"kaldi: feats.scp"``), recorded in the default configuration.
    hop_ms : float, optional
        The frame period the features declare (HTK files do), recorded in the default configuration and
        checked against a given one.

    Returns
    -------
    ImportReport
    """
    from ..features._config import MfccConfig
    from ..storage._archive_write import write_features

    if config is not None and not isinstance(config, MfccConfig):
        raise ParameterError(f"config must be an MfccConfig, got {type(config).__name__}")
    dd, src, out = data_dir, Path(src), Path(out)
    known = set(dd.utterances)
    manifest = dd.tables() if manifest is None else manifest
    entries = _checked(iter(entries), src)
    first = next(entries, None)
    if first is None:
        raise DataError(f"{src}: holds no features")
    dim = first[1].shape[1]
    if config is None:
        config = _config_for(dim, src, computed_by or f"another toolkit ({src.name})", hop_ms)
    elif config.n_features != dim:
        raise ParameterError(f"{src}: the features have {dim} columns, the configuration given describes "
                             f"{config.n_features}")
    elif hop_ms is not None and abs(config.hop_ms - hop_ms) > 1e-6:
        raise ParameterError(f"{src}: the features are {hop_ms:g} ms apart, the configuration given says "
                             f"{config.hop_ms:g} ms")
    if sample_rate is None:
        sample_rate = config.sample_rate or _audio_rate(dd, first[0])
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ParameterError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")

    seen, unknown, skipped = set(), [], []

    def items():
        for utt, x in _chain(first, entries):
            if x.shape[1] != dim:
                raise DataError(f"{src}: entry {utt!r} has {x.shape[1]} columns, the first entry has {dim}")
            if utt not in known:
                unknown.append(utt)  # an archive is read once: all of them are named at the end
                continue
            seen.add(utt)
            yield utt, x, dd.utt2label.get(utt), dd.utt2spk.get(utt)
        if unknown:  # raised inside write_features: its temporary file goes, and ``out`` is never written
            raise DataError(unknown_message(src, unknown, dd.path))
        for utt in dd.utterances:
            if utt not in seen:
                skipped.append((utt, str(dd.source(utt)[1]), f"no features in {src}"))

    n = write_features(out, items(), config=config, sample_rate=int(sample_rate), manifest=manifest,
                       skipped=skipped, data_dir=str(dd.path.resolve()))
    return ImportReport(out, n, [u for u, _, _ in skipped])


def unknown_message(src: Path, unknown: list, data_dir: Path) -> str:
    shown = ", ".join(map(str, unknown[:5])) + (", ..." if len(unknown) > 5 else "")
    return (f"{src}: {len(unknown)} utterance(s) are not in the data directory {data_dir}: {shown}; "
            f"give the data directory the features were computed from")


def _checked(entries, src: Path):
    """Entries as ``(utt, float32 matrix)``: vectors, audio and anything else, empty matrices, non-finite values
    and repeated ids are errors naming the file and the entry."""
    seen = set()
    for utt, value in entries:
        if utt in seen:
            raise DataError(f"{src}: utterance {utt!r} occurs twice")
        seen.add(utt)
        if not isinstance(value, np.ndarray) or value.ndim != 2:
            what = (f"a {value.ndim}-D array of shape {value.shape}" if isinstance(value, np.ndarray)
                    else type(value).__name__)
            raise DataError(f"{src}: entry {utt!r} is {what}, expected a feature matrix (n_frames, n_features)")
        if value.shape[1] == 0:
            raise DataError(f"{src}: entry {utt!r} has no columns")
        if value.shape[0] == 0:  # an utterance of no frames cannot be scored or trained on: said here, by id
            raise DataError(f"{src}: entry {utt!r} has no frames (a 0 x {value.shape[1]} matrix)")
        x = np.ascontiguousarray(value, dtype=np.float32)
        if not np.isfinite(x).all():
            raise DataError(f"{src}: entry {utt!r} holds NaN or inf (or values beyond float32's range)")
        yield utt, x


def _chain(first, rest):
    yield first
    yield from rest


def _config_for(dim: int, src: Path, computed_by: str, hop_ms: float | None = None):
    """An MfccConfig that states what is known of imported features: their dimension, that acoustic_gmm
    applied no deltas and no normalisation, and who computed them (so that it refuses to compute such
    frames from audio itself)."""
    from ..features._config import MfccConfig

    try:
        return MfccConfig(n_mfcc=dim, n_mels=max(dim, MfccConfig.n_mels), deltas=0, cmvn="none",
                          computed_by=computed_by, **({} if hop_ms is None else {"hop_ms": hop_ms}))
    except ParameterError as exc:
        raise ParameterError(f"{src}: {dim} columns cannot be described by an MfccConfig ({exc}); "
                             f"give config=") from None


def _audio_rate(dd, utt: str) -> int:
    from ..features._audio import AudioFile

    _, wav, _, _ = dd.source(utt)
    try:
        with AudioFile(wav) as audio:
            return int(audio.sample_rate)
    except DataError as exc:
        raise ParameterError(f"{dd.path}: the sample rate was not given and the audio of {utt!r} cannot be "
                             f"read to find it ({exc}); pass sample_rate") from None
