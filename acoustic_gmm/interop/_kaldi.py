"""Kaldi interoperability: features as archives and script files, GMMs in Kaldi's ``DiagGmm`` text format.

What Kaldi calls these things:

* An **archive** (``.ark``, a *wspecifier* ``ark:feats.ark``) is a file of ``key value`` entries one after
  the other; for features each value is a matrix (n_frames, n_features), in the binary format a ``\\0B``
  header, a type token (``FM`` float, ``DM`` double, ``CM`` compressed), the row and column counts and the
  numbers.  The key is the utterance id.
* A **script file** (``.scp``, ``scp:feats.scp``) lists ``utt_id ark_path:byte_offset`` lines, each
  pointing at the first byte of a matrix inside an archive: random access without reading the archive.
  A Kaldi data directory's ``feats.scp`` is one.
* A **data directory** (``wav.scp``, ``utt2spk``, ...) is read by :func:`acoustic_gmm.storage.read_data_dir`;
  acoustic_gmm keeps an utterance's class in ``utt2label``, where Kaldi has transcripts in ``text``.
* A **global diagonal GMM** (a ``DiagGmm``, the UBM of ``gmm-global-init-from-feats`` and
  ``gmm-global-est``; ``final.dubm`` of an i-vector recipe) stores, per component ``k``, the weight, the
  means times the inverse variances (``<MEANS_INVVARS>``), the inverse variances (``<INV_VARS>``) and a
  constant (``<GCONSTS>``): the component's log-likelihood at the origin,

  ``gconst_k = log w_k - 0.5 * (D log(2 pi) + sum_d log var_kd) - 0.5 * sum_d mean_kd^2 / var_kd``

  (``DiagGmm::ComputeGconsts``), so that ``log w_k N(x | k) = gconst_k + (mean_k / var_k) . x - 0.5 x^2 . (1
  / var_k)``.  ``gmm-global-copy --binary=false in.dubm out.txt`` writes the text form this module reads
  and writes; ``gmm-global-copy out.txt final.dubm`` turns it back into Kaldi's binary form.

Binary features are read and written with `kaldiio <https://github.com/nttcslab-sp/kaldiio>`_, the
field's Python reader and writer of Kaldi archives (an optional dependency: ``pip install
'acoustic-gmm[kaldi]'``); the GMM text format is plain text and needs nothing.

Examples
--------
::

    export_kaldi("feats.h5", "kaldi/feats.ark")                 # kaldi/feats.ark + kaldi/feats.scp
    import_kaldi("kaldi/feats.scp", "data/train", "train.h5")   # back, with data/train's speakers and labels
    write_diag_gmm("ubm.txt", w, means, variances)                 # then: gmm-global-copy ubm.txt final.dubm
    w, means, variances = read_diag_gmm("ubm.txt")                 # from: gmm-global-copy --binary=false ...
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from pathlib import Path

import numpy as np

from ..errors import ArchiveError, DataError, ModelFileError, OutputError, ParameterError
from ..storage._datadir import check_unique
from ..storage._outputs import writing
from ._bridge import ImportReport, import_matrices, unknown_message

__all__ = ["write_diag_gmm", "read_diag_gmm"]


LOG_2PI = math.log(2 * math.pi)


GCONST_RTOL = 1e-4      # a file's <GCONSTS> must agree with the recomputed ones this closely (relative to the terms)


WEIGHT_SUM_TOL = 1e-3   # Kaldi's weights sum to 1 up to the digits of its text format; more than this is not a mixture


EXPORT_FRAMES = 1 << 18  # frames read from the feature archive at once while exporting (~60 MB at 60 features)


def _kaldiio():
    """kaldiio, imported here so that the rest of acoustic_gmm never needs it."""
    try:
        import kaldiio
    except ImportError:
        raise ParameterError("reading and writing Kaldi archives needs the kaldiio package: "
                             "pip install 'acoustic-gmm[kaldi]'") from None
    return kaldiio


def _shown(items, n: int = 5) -> str:
    items = list(items)
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


# --------------------------------------------------------------------------- features out

def export_kaldi(archive_path, ark_path, *, scp: bool = True, ids=None) -> int:
    """Write a feature archive's utterances to a Kaldi binary archive, and a script file beside it.

    Each utterance becomes one entry ``utt_id`` -> float32 matrix (n_frames, n_features) (Kaldi's
    ``FM``, uncompressed, little-endian: what ``copy-feats`` writes and every Kaldi feature reader
    reads).  With ``scp``, ``ARK.scp`` (the archive's name with the suffix ``.scp``) lists
    ``utt_id /absolute/path/ARK:offset``, the byte offsets kaldiio reports, so Kaldi tools can read
    the utterances by id (``scp:feats.scp``).  Both files are written to temporary files and renamed
    into place only when complete (the archive first, then the script file that points into it);
    existing files are replaced (the command line decides whether they may be).

    Parameters
    ----------
    archive_path : path or FeatureArchive
        The acoustic_gmm feature archive (HDF5) to export.
    ark_path : path
        The Kaldi archive to write, conventionally ``something.ark``.
    scp : bool
        Also write the script file ``ark_path`` with suffix ``.scp``.
    ids : list of str, optional
        Only these utterances, in this order (default: all, in archive order).

    Returns
    -------
    int
        The number of utterances written.

    Raises
    ------
    ParameterError
        kaldiio is missing; ``ark_path`` ends in ``.scp``; ``ids`` is empty.
    DataError
        An utterance id is not a Kaldi key (empty or with white space); ``ids`` names utterances the
        archive does not have.
    OutputError
        ``ark_path`` or its script file cannot be written.

    Examples
    --------
    ::

        n = export_kaldi("feats.h5", "kaldi/feats.ark")    # kaldi/feats.ark, kaldi/feats.scp
        # in Kaldi:  feat-to-dim scp:kaldi/feats.scp -   or   copy-feats scp:kaldi/feats.scp ark,t:- | head
    """
    from ..storage._archive import opened
    from ..storage._outputs import atomic_path

    kaldiio = _kaldiio()
    ark_path = Path(ark_path)
    if ark_path.suffix == ".scp":
        raise ParameterError(f"{ark_path}: the archive to write ends in .scp, the suffix of its script file; "
                             f"name it something.ark")
    scp_path = ark_path.with_suffix(".scp")
    with opened(archive_path) as fa:
        for out in (ark_path, scp_path):
            if out.exists() and os.path.samefile(out, fa.path):
                raise OutputError(f"{out}: is the feature archive being exported; write the Kaldi archive elsewhere")
        ids = list(fa.ids) if ids is None else fa.check_ids(ids)
        if not ids:
            raise ParameterError(f"{fa.path}: no utterances to export")
        bad = [u for u in ids if not u or any(c.isspace() for c in u)]
        if bad:
            raise DataError(f"{fa.path}: {len(bad)} utterance id(s) cannot be Kaldi keys (empty or with white "
                            f"space): {_shown(map(repr, bad))}")
        final = str(ark_path.absolute())  # what the script file names: the archive's final name, not the temporary's
        with contextlib.ExitStack() as stack:
            # the archive's block is the inner one: it is renamed into place before the script file pointing into it
            tmp_scp = stack.enter_context(atomic_path(scp_path)) if scp else None
            tmp_ark = stack.enter_context(atomic_path(ark_path))
            lines = []
            with open(tmp_ark, "wb") as fd:
                for batch in _batches(ids, fa.n_frames, EXPORT_FRAMES):
                    for utt, x in zip(batch, fa.utterances(batch)):
                        where = io.StringIO()
                        kaldiio.save_ark(fd, {utt: np.ascontiguousarray(x, dtype=np.float32)}, scp=where)
                        offset = where.getvalue().rsplit(":", 1)[1].strip()  # "utt TMP_PATH:offset\n"
                        lines.append(f"{utt} {final}:{offset}\n")
            if scp:
                with open(tmp_scp, "w", encoding="utf-8") as f:
                    f.writelines(lines)
    return len(ids)


def _batches(ids: list, n_frames: dict, max_frames: int):
    """``ids`` in consecutive groups of at most ``max_frames`` frames (an utterance longer than that: alone)."""
    batch, total = [], 0
    for u in ids:
        if batch and total + n_frames[u] > max_frames:
            yield batch
            batch, total = [], 0
        batch.append(u)
        total += n_frames[u]
    if batch:
        yield batch


# --------------------------------------------------------------------------- features in

def import_kaldi(scp_or_ark, data_dir, out, *, config=None, sample_rate: int | None = None,
                    overwrite: bool = False) -> ImportReport:
    """Write an acoustic_gmm feature archive from Kaldi features, with a data directory's speakers and labels.

    The matrices are read with kaldiio, in the order of the file: from a script file (``feats.scp``,
    ``utt path:offset`` lines; relative paths are relative to the working directory, as in Kaldi) or
    straight from an archive (binary or text, float, double or compressed; stored as float32).  Each
    utterance's speaker and label are those of ``data_dir``'s ``utt2spk`` and ``utt2label`` (none
    if the directory lacks the table).  Every utterance of the features must be one of the data
    directory's; utterances of the data directory without features are skipped, listed in the
    archive's ``skipped`` and returned.  The archive records the data directory's tables, and the
    script file as ``feats.scp``, in its manifest.

    Parameters
    ----------
    scp_or_ark : path
        A script file (``.scp``) or an archive (``.ark``; other names are told apart by their content).
        Kaldi's pipes and ``ark:-`` are not read: write the features to a file first (``copy-feats``).
    data_dir : path
        The Kaldi data directory the features were computed from.
    out : path
        The feature archive to write; it must not exist unless ``overwrite`` (then it is replaced atomically).
    config : MfccConfig, optional
        The front end that made the features, if it can be described by one; its ``n_features`` must be
        the matrices' column count.  By default a configuration that states only the dimension
        honestly: ``n_mfcc`` = the column count, no deltas, no CMVN (acoustic_gmm applied none); its
        other fields do not describe Kaldi's front end, so do not extract features from audio with it.
    sample_rate : int, optional
        The audio's sample rate (Hz), recorded in the archive; default: ``config.sample_rate``, else
        read from the header of the first utterance's audio file (an error if it cannot be read).

    Returns
    -------
    ImportReport
        ``(out, n_utterances, missing)``.

    Raises
    ------
    ParameterError
        kaldiio is missing; ``config`` does not match the features' dimension; the sample rate is not
        given and cannot be found.
    ArchiveError
        ``scp_or_ark`` does not exist or cannot be read.
    DataError
        Entries that are not matrices, of different widths, with NaN or inf, ids given twice, no
        entries, or utterances that are not in the data directory (a few are listed).
    ManifestError
        The data directory is malformed.
    OutputError
        ``out`` exists.

    Examples
    --------
    ::

        report = import_kaldi("data/train/feats.scp", "data/train", "train.h5", sample_rate=16000)
        report.n_utterances, report.missing     # (2000, ['spk3-utt7'])
    """
    from ..features._config import MfccConfig
    from ..storage._datadir import read_data_dir

    kaldiio = _kaldiio()
    src, out = Path(scp_or_ark), Path(out)
    if not src.is_file():
        raise ArchiveError(f"{src}: no such file" if not src.exists() else f"{src}: not a file")
    if config is not None and not isinstance(config, MfccConfig):
        raise ParameterError(f"config must be an MfccConfig, got {type(config).__name__}")
    dd = read_data_dir(data_dir)
    known = set(dd.utterances)
    is_scp = _is_script(src)
    manifest = dd.tables()
    if is_scp:
        keys, text = _script_keys(src)
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise DataError(unknown_message(src, unknown, dd.path))
        manifest["feats.scp"] = text
        entries = kaldiio.load_scp_sequential(str(src))
    else:
        entries = kaldiio.load_ark(str(src))
    with writing({out: "out"}, [src], overwrite=overwrite):  # the package's one output policy
        return import_matrices(_guarded(entries, src, keys if is_scp else None), src, dd, out, config=config,
                               sample_rate=sample_rate, manifest=manifest, computed_by=f"Kaldi ({src.name})")


def _is_script(path: Path) -> bool:
    """A script file (text lines ``key rxfilename``) rather than an archive (``key \\0B...`` or ``key [ ...``)."""
    if path.suffix in (".scp", ".ark"):
        return path.suffix == ".scp"
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    parts = head.lstrip().split(None, 1)
    return not (len(parts) == 2 and (parts[1].startswith(b"\0B") or parts[1].startswith(b"[")))


def _script_keys(path: Path) -> tuple[list, str]:
    """The keys of a script file, in order, and its text; a duplicate key or a line without a path is an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a Kaldi script file (not UTF-8 text: {exc})") from None
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    keys, lines = [], {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            raise DataError(f"{path}:{lineno}: expected 'utt_id ark_path:offset', got {line.strip()!r}")
        check_unique(path, lines, parts[0], lineno, f"utterance {parts[0]!r}", DataError)
        keys.append(parts[0])
    return keys, text


def _guarded(entries, src: Path, keys: list | None = None):
    """kaldiio's ``(key, value)`` entries; whatever kaldiio raises on a damaged file becomes an error naming it,
    and the entry it was reading: a script file's next key (kaldiio names none), or the one after the last read."""
    n, last = 0, None
    while True:
        try:
            item = next(entries)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - kaldiio raises ValueError, struct.error, AssertionError, ...
            if keys is not None and n < len(keys):
                which = f" at entry {keys[n]!r} (the script's entry {n + 1})"
            else:
                which = f" after entry {last!r}" if last is not None else ""
            why = str(exc) or ("an offset past the end of its ark, or no matrix there"
                               if isinstance(exc, AssertionError) else type(exc).__name__)
            raise ArchiveError(f"{src}: cannot be read as Kaldi features{which} ({why})") from None
        n, last = n + 1, item[0]
        yield item


# --------------------------------------------------------------------------- DiagGmm text format

def diag_gmm_gconsts(weights, means, variances) -> np.ndarray:
    """Kaldi's ``<GCONSTS>``: each component's ``log w_k + log N(0 | mean_k, var_k)`` (``DiagGmm::ComputeGconsts``).

    Parameters
    ----------
    weights : array (n_components,)
    means, variances : arrays (n_components, n_features)

    Returns
    -------
    ndarray (n_components,), float64
        ``log w_k - 0.5 * (D log(2 pi) + sum_d log var_kd) - 0.5 * sum_d mean_kd^2 / var_kd``; -inf for a
        zero weight, as in Kaldi.

    Examples
    --------
    >>> float(diag_gmm_gconsts([1.0], [[0.0]], [[1.0]])[0]) == -0.5 * math.log(2 * math.pi)
    True
    """
    w, m, v = (np.asarray(a, dtype=np.float64) for a in (weights, means, variances))
    with np.errstate(divide="ignore"):
        log_w = np.log(w)
    return log_w - 0.5 * (m.shape[1] * LOG_2PI + np.log(v).sum(1)) - 0.5 * (m * m / v).sum(1)


def _number(x: float) -> str:
    """The shortest text that reads back as the same float64 (so float32 too): Python's ``repr``, with
    ``3`` for ``3.0`` as Kaldi writes it; ``-inf`` as C++ streams write it."""
    s = repr(float(x))
    return s.removesuffix(".0")


def _vector(v) -> str:
    return " [ " + "".join(_number(x) + " " for x in v) + "]\n"


def _matrix(a) -> str:
    return " [" + "".join("\n  " + "".join(_number(x) + " " for x in row) for row in a) + "]\n"


def write_diag_gmm(path, weights, means, variances) -> None:
    """Write a diagonal GMM in Kaldi's ``DiagGmm`` text format, as ``gmm-global-copy --binary=false`` does.

    The layout is Kaldi's, token for token and space for space::

        <DiagGMM> 
        <GCONSTS>  [ g1 g2 ]
        <WEIGHTS>  [ w1 w2 ]
        <MEANS_INVVARS>  [
          m11/v11 m12/v12 
          m21/v21 m22/v22 ]
        <INV_VARS>  [
          1/v11 1/v12 
          1/v21 1/v22 ]
        </DiagGMM> 

    Numbers are computed in float64 and written as the shortest decimal that reads back as the same
    float64 (Python's ``repr``, at most 17 significant digits; ``-inf`` for the gconst of a zero
    weight), so a round trip is exact to the last bit of the stored quantities, and Kaldi (float32)
    gets its values correctly rounded.  The file is written to a temporary file and renamed into place.

    Parameters
    ----------
    path : path
        The text file to write (existing files are replaced).
    weights : array (n_components,)
        Non-negative mixture weights.
    means : array (n_components, n_features)
    variances : array (n_components, n_features)
        Positive diagonal variances.

    Raises
    ------
    ParameterError
        Shapes that do not fit together, NaN or inf, negative weights, variances that are not positive.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "ubm.txt")
    >>> write_diag_gmm(p, [0.5, 0.5], [[0.0, 1.0], [2.0, 3.0]], [[1.0, 1.0], [1.0, 0.5]])
    >>> open(p).read().splitlines()[5]     # the second component's means times inverse variances
    '  2 6 ]'
    >>> w, m, v = read_diag_gmm(p)
    >>> m.tolist(), v.tolist()
    ([[0.0, 1.0], [2.0, 3.0]], [[1.0, 1.0], [1.0, 0.5]])
    """
    from ..storage._hdf5 import write_text

    w, m, v = (np.asarray(a, dtype=np.float64) for a in (weights, means, variances))
    if w.ndim != 1 or len(w) == 0 or m.ndim != 2 or m.shape != v.shape or m.shape[0] != len(w) or m.shape[1] == 0:
        raise ParameterError(f"write_diag_gmm {path}: expected weights (K,), means and variances (K, D) with K, "
                             f"D >= 1; got {w.shape}, {m.shape}, {v.shape}")
    for name, a in (("weights", w), ("means", m), ("variances", v)):
        if not np.isfinite(a).all():
            raise ParameterError(f"write_diag_gmm {path}: {name} contain NaN or inf")
    if (w < 0).any():
        raise ParameterError(f"write_diag_gmm {path}: {int((w < 0).sum())} weight(s) are negative")
    if (v <= 0).any():
        raise ParameterError(f"write_diag_gmm {path}: {int((v <= 0).sum())} variance(s) are not positive")
    inv_vars = 1.0 / v
    text = ("<DiagGMM> \n"
            "<GCONSTS> " + _vector(diag_gmm_gconsts(w, m, v))
            + "<WEIGHTS> " + _vector(w)
            + "<MEANS_INVVARS> " + _matrix(m * inv_vars)
            + "<INV_VARS> " + _matrix(inv_vars)
            + "</DiagGMM> \n")
    write_text(path, text)


class _Tokens:
    """The white-space separated tokens of a Kaldi text object (brackets are tokens of their own)."""

    def __init__(self, text: str, path: Path):
        self.items = text.replace("[", " [ ").replace("]", " ] ").split()
        self.pos = 0
        self.path = path

    def next(self, what: str) -> str:
        if self.pos >= len(self.items):
            raise ModelFileError(f"{self.path}: ends early: expected {what}; the file is truncated")
        self.pos += 1
        return self.items[self.pos - 1]

    def expect(self, *tokens: str) -> str:
        tok = self.next(" or ".join(tokens))
        if tok not in tokens:
            raise ModelFileError(f"{self.path}: expected {' or '.join(tokens)}, found {tok[:40]!r}")
        return tok

    def numbers(self, what: str) -> np.ndarray:
        self.expect("[")
        values = []
        while True:
            tok = self.next(f"the numbers of {what} and ']'")
            if tok == "]":
                return np.array(values, dtype=np.float64)
            try:
                values.append(float(tok))
            except ValueError:
                raise ModelFileError(f"{self.path}: {what}: {tok[:40]!r} is not a number") from None


def read_diag_gmm(path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read a diagonal GMM from Kaldi's ``DiagGmm`` text format (``gmm-global-copy --binary=false``).

    Means and variances are recovered from the stored ``<MEANS_INVVARS>`` and ``<INV_VARS>`` (``means =
    MEANS_INVVARS / INV_VARS``, ``variances = 1 / INV_VARS``).  The file's ``<GCONSTS>`` are checked
    against the ones the parameters give (:func:`diag_gmm_gconsts`), to a relative ``GCONST_RTOL`` of the
    size of their terms (Kaldi writes about 6 significant digits), which catches a damaged or
    inconsistently edited file; Kaldi itself recomputes them, and so may a file leave them out.  Any
    white space may separate the tokens, and Kaldi's older ``<DiagGMMBegin>``/``<DiagGMMEnd>`` are
    accepted.  The weights, which Kaldi writes to a few digits, are divided by their sum.

    Parameters
    ----------
    path : path
        The text model file.

    Returns
    -------
    weights : ndarray (n_components,), float64
    means : ndarray (n_components, n_features), float64
    variances : ndarray (n_components, n_features), float64

    Raises
    ------
    ModelFileError
        Naming the file: missing, Kaldi's binary format (convert it with ``gmm-global-copy
        --binary=false``), another object, malformed or truncated, inconsistent shapes, invalid values
        (negative weights, weights that do not sum to 1, inverse variances that are not positive), or
        ``<GCONSTS>`` that disagree with the parameters.

    Examples
    --------
    ::

        # gmm-global-copy --binary=false exp/ubm/final.dubm ubm.txt
        w, means, variances = read_diag_gmm("ubm.txt")
        ubm = DiagGMM(w, means, variances)
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such file")
    if path.is_dir():
        raise ModelFileError(f"{path}: is a folder, not a Kaldi model file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if data.startswith(b"\0B"):
        raise ModelFileError(f"{path}: a Kaldi model in binary format; convert it to text first: "
                             f"gmm-global-copy --binary=false {path} {path.with_suffix('.txt')}")
    if data.startswith(b"\x89HDF"):
        raise ModelFileError(f"{path}: an HDF5 file, not a Kaldi text model; acoustic_gmm's own model files are "
                             f"read with acoustic_gmm.gmm.load_models")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ModelFileError(f"{path}: not a Kaldi text model (not ASCII text)") from None
    tokens = _Tokens(text, path)
    first = tokens.next("<DiagGMM>")
    if first not in ("<DiagGMM>", "<DiagGMMBegin>"):
        hint = " (a full-covariance GMM: not supported)" if first.startswith("<FullGMM") else ""
        raise ModelFileError(f"{path}: not a Kaldi DiagGmm: expected <DiagGMM> at the start, found "
                             f"{first[:40]!r}{hint}")
    gconsts = None
    if tokens.expect("<GCONSTS>", "<WEIGHTS>") == "<GCONSTS>":
        gconsts = tokens.numbers("<GCONSTS>")
        tokens.expect("<WEIGHTS>")
    weights = tokens.numbers("<WEIGHTS>")
    tokens.expect("<MEANS_INVVARS>")
    means_invvars = tokens.numbers("<MEANS_INVVARS>")
    tokens.expect("<INV_VARS>")
    inv_vars = tokens.numbers("<INV_VARS>")
    tokens.expect("</DiagGMM>", "<DiagGMMEnd>")
    if tokens.pos < len(tokens.items):
        raise ModelFileError(f"{path}: unexpected text after the end of the model: {tokens.items[tokens.pos][:40]!r}")

    K = len(weights)
    if K == 0:
        raise ModelFileError(f"{path}: the model has no components (<WEIGHTS> is empty)")
    if len(inv_vars) == 0 or len(inv_vars) % K or len(means_invvars) != len(inv_vars):
        raise ModelFileError(f"{path}: {K} weights, {len(means_invvars)} numbers in <MEANS_INVVARS> and "
                             f"{len(inv_vars)} in <INV_VARS>: expected the same multiple of {K} in both")
    D = len(inv_vars) // K
    means_invvars, inv_vars = means_invvars.reshape(K, D), inv_vars.reshape(K, D)
    if gconsts is not None and len(gconsts) != K:
        raise ModelFileError(f"{path}: {len(gconsts)} <GCONSTS> for {K} components")
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ModelFileError(f"{path}: <WEIGHTS> must be finite and non-negative")
    if abs(weights.sum() - 1.0) > WEIGHT_SUM_TOL:
        raise ModelFileError(f"{path}: <WEIGHTS> sum to {weights.sum():.9g}, not 1")
    if not np.isfinite(inv_vars).all() or (inv_vars <= 0).any():
        raise ModelFileError(f"{path}: <INV_VARS> must be finite and positive")
    if not np.isfinite(means_invvars).all():
        raise ModelFileError(f"{path}: <MEANS_INVVARS> contain NaN or inf")
    means, variances = means_invvars / inv_vars, 1.0 / inv_vars
    if gconsts is not None:
        _check_gconsts(path, gconsts, weights, means_invvars, inv_vars)
    return weights / weights.sum(), means, variances


def _check_gconsts(path, gconsts, weights, means_invvars, inv_vars) -> None:
    """The file's gconsts against Kaldi's computation from the stored quantities, relative to the size of the terms."""
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)
    D = inv_vars.shape[1]
    log_det = 0.5 * np.log(inv_vars).sum(1)
    quad = 0.5 * (means_invvars * means_invvars / inv_vars).sum(1)
    expected = log_w - 0.5 * D * LOG_2PI + log_det - quad
    scale = np.abs(log_w) + 0.5 * D * LOG_2PI + 0.5 * np.abs(np.log(inv_vars)).sum(1) + quad
    zero = weights == 0  # Kaldi: -inf
    with np.errstate(invalid="ignore"):
        bad = np.where(zero, gconsts != -np.inf, ~(np.abs(gconsts - expected) <= GCONST_RTOL * scale))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ModelFileError(f"{path}: <GCONSTS> disagree with the weights, means and variances for "
                             f"{int(bad.sum())} of {len(bad)} component(s) (component {k}: file {gconsts[k]:.9g}, "
                             f"recomputed {expected[k]:.9g}); the file is damaged or was edited inconsistently")
