"""Kaldi-style data directories: what audio a corpus has and what each utterance is.

A data directory holds plain-text tables, one ``key value`` line each:

``wav.scp``    recording id -> audio path (relative paths are relative to the directory)
``utt2spk``    utterance id -> speaker
``utt2label``  utterance id -> class label (word, digit, phone ...)
``segments``   utterance id -> recording id, start and end in seconds (optional)

Without ``segments`` every recording is an utterance with the same id.  With it, the
utterances are the segments, so phones or words inside a longer recording are
utterances too.  Recipes build these directories from a corpus's own layout; the library
knows no corpus.

Examples
--------
>>> import tempfile
>>> d = tempfile.mkdtemp()
>>> write_data_dir(d, {"u1": "/audio/u1.wav"}, utt2spk={"u1": "ann"}, utt2label={"u1": "7"})
>>> dd = read_data_dir(d)
>>> dd.utterances, dd.utt2label["u1"]
(['u1'], '7')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ManifestError

__all__ = ["DataDir", "read_data_dir", "write_data_dir", "read_ids", "read_spk2utt", "read_phn", "read_htk_lab"]


@dataclass
class DataDir:
    """The tables of one data directory, validated against each other."""

    path: Path
    wav: dict[str, Path]
    utt2spk: dict[str, str] = field(default_factory=dict)
    utt2label: dict[str, str] = field(default_factory=dict)
    segments: dict[str, tuple[str, float, float]] = field(default_factory=dict)

    @property
    def utterances(self) -> list[str]:
        return sorted(self.segments) if self.segments else sorted(self.wav)

    def source(self, utt: str) -> tuple[str, Path, float | None, float | None]:
        """``(recording id, audio path, start, end)`` of an utterance (start/end None: whole file)."""
        if self.segments:
            rec, start, end = self.segments[utt]
            return rec, self.wav[rec], start, end
        return utt, self.wav[utt], None, None

    def missing_files(self) -> list[tuple[str, Path]]:
        """Recordings whose audio file does not exist."""
        return [(rec, p) for rec, p in sorted(self.wav.items()) if not p.is_file()]

    def tables(self) -> dict[str, str]:
        """The directory's tables as text, as they would be written (for archives to record)."""
        out = {"wav.scp": _format({k: str(v) for k, v in self.wav.items()})}
        for name, table in (("utt2spk", self.utt2spk), ("utt2label", self.utt2label)):
            if table:
                out[name] = _format(table)
        if self.segments:
            out["segments"] = _format({u: f"{r} {s:.6g} {e:.6g}" for u, (r, s, e) in self.segments.items()})
        return out


def check_unique(path, seen: dict, key, lineno: int, what: str, error=ManifestError) -> None:
    """The one rule for a repeated entry of any list file the tools read (data-directory tables, id lists,
    spk2utt, trials, score files, cohorts): an entry seen before is an error naming the file and both lines,
    never a silent "the last one wins" or an entry counted twice.  ``seen`` maps entries to their first line.

    Examples
    --------
    >>> seen = {}
    >>> check_unique("utts", seen, "a", 1, "id 'a'")
    >>> check_unique("utts", seen, "a", 4, "id 'a'")
    Traceback (most recent call last):
    ...
    acoustic_gmm.errors.ManifestError: utts:4: duplicate id 'a' (first on line 1)
    """
    if key in seen:
        raise error(f"{path}:{lineno}: duplicate {what} (first on line {seen[key]})")
    seen[key] = lineno


def _read_table(path: Path, n_fields: int | None = None) -> dict[str, tuple[str, int]]:
    """``key -> (rest of line, line number)``; duplicate keys and malformed lines are errors.  A UTF-8 byte-order
    mark (Windows editors write one) is not part of the first key."""
    table: dict[str, tuple[str, int]] = {}
    seen: dict = {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text ({exc})") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) < 2:
            raise ManifestError(f"{path}:{lineno}: expected 'key value', got {line.strip()!r}")
        key, rest = parts[0], parts[1].strip()
        if "/" in key:
            raise ManifestError(f"{path}:{lineno}: id {key!r} contains '/', which ids may not")
        if n_fields is not None and len(rest.split()) != n_fields:
            raise ManifestError(f"{path}:{lineno}: expected {n_fields} value(s) after the id, got {rest!r}")
        check_unique(path, seen, key, lineno, f"id {key!r}")
        table[key] = (rest, lineno)
    return table


def _check_keys(path: Path, table: dict, expected: set, what: str) -> None:
    missing = sorted(expected - set(table))
    extra = sorted(set(table) - expected)
    if extra:
        key = extra[0]
        raise ManifestError(f"{path}:{table[key][1]}: id {key!r} is not one of the {what}"
                            + (f" ({len(extra)} such ids)" if len(extra) > 1 else ""))
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise ManifestError(f"{path}: {len(missing)} of the {what} have no line: {shown}")


def read_data_dir(path) -> DataDir:
    """Read and cross-check a data directory; raises :class:`ManifestError` naming file and line.

    Missing audio files are not an error here (extraction reports and skips them); see
    :meth:`DataDir.missing_files`.
    """
    path = Path(path)
    if not path.is_dir():
        raise ManifestError(f"{path}: not a data directory")
    scp = path / "wav.scp"
    if not scp.is_file():
        raise ManifestError(f"{path}: has no wav.scp")
    wav = {}
    for rec, (value, lineno) in _read_table(scp).items():
        if value.endswith("|"):
            raise ManifestError(f"{scp}:{lineno}: piped commands are not supported; give an audio file path")
        p = Path(value)
        wav[rec] = p if p.is_absolute() else path / p
    segments = {}
    seg_path = path / "segments"
    if seg_path.is_file():
        for utt, (value, lineno) in _read_table(seg_path, 3).items():
            rec, start, end = value.split()
            try:
                start_s, end_s = float(start), float(end)
            except ValueError:
                raise ManifestError(f"{seg_path}:{lineno}: start and end must be seconds, got {start!r} {end!r}") from None
            if rec not in wav:
                raise ManifestError(f"{seg_path}:{lineno}: recording {rec!r} is not in wav.scp")
            if not 0 <= start_s < end_s:
                raise ManifestError(f"{seg_path}:{lineno}: need 0 <= start < end, got {start_s} {end_s}")
            segments[utt] = (rec, start_s, end_s)
        if not segments:
            raise ManifestError(f"{seg_path}: is empty")
    utts = set(segments) if segments else set(wav)
    if not utts:
        raise ManifestError(f"{scp}: is empty")
    tables = {}
    for name in ("utt2spk", "utt2label"):
        p = path / name
        if p.is_file():
            table = _read_table(p, 1)
            # which file defines the utterances is said: the line may be extra, or that file's may be missing
            _check_keys(p, table, utts, f"utterances of {'segments' if segments else 'wav.scp'}")
            tables[name] = {k: v for k, (v, _) in table.items()}
    return DataDir(path, wav, tables.get("utt2spk", {}), tables.get("utt2label", {}), segments)


def _format(table: dict) -> str:
    return "".join(f"{k} {table[k]}\n" for k in sorted(table))


def write_data_dir(path, wav: dict, utt2spk: dict | None = None, utt2label: dict | None = None,
                   segments: dict | None = None) -> None:
    """Write a data directory (each table sorted, each file written atomically) and check it reads back."""
    from ._hdf5 import write_text as _write_text

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for key in list(wav) + list(segments or {}):
        if not key or any(c.isspace() for c in key) or "/" in key:
            raise ManifestError(f"id {key!r} cannot be written: ids must be non-empty, without spaces or '/'")
    _write_text(path / "wav.scp", _format({k: str(v) for k, v in wav.items()}))
    for name, table in (("utt2spk", utt2spk), ("utt2label", utt2label)):
        if table:
            _write_text(path / name, _format(table))
        elif (path / name).exists():
            (path / name).unlink()
    if segments:
        _write_text(path / "segments", _format({u: f"{r} {s:.6g} {e:.6g}" for u, (r, s, e) in segments.items()}))
    elif (path / "segments").exists():
        (path / "segments").unlink()
    read_data_dir(path)


# --------------------------------------------------------------------------- id lists

def _lines(path) -> list[tuple[int, list[str]]]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text ({exc})") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read ({exc.strerror})") from None
    return [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def read_ids(path) -> list[str]:
    """Utterance ids: the first field of every non-empty line (an id list, or any table such as utt2spk)."""
    seen: dict = {}
    for lineno, parts in _lines(path):
        check_unique(path, seen, parts[0], lineno, f"id {parts[0]!r}")
    if not seen:
        raise ManifestError(f"{path}: lists no utterance ids")
    return list(seen)


def read_spk2utt(path) -> dict[str, list[str]]:
    """Kaldi's spk2utt, ``model utt1 [utt2 ...]`` per line, as ``{model: [utt, ...]}``."""
    groups: dict[str, list[str]] = {}
    models: dict = {}
    for lineno, parts in _lines(path):
        if len(parts) < 2:
            raise ManifestError(f"{path}:{lineno}: expected 'model utt1 [utt2 ...]'")
        check_unique(path, models, parts[0], lineno, f"model {parts[0]!r}")
        utts: dict = {}
        for u in parts[1:]:
            check_unique(path, utts, u, lineno, f"utterance {u!r} of model {parts[0]!r}")
        groups[parts[0]] = parts[1:]
    if not groups:
        raise ManifestError(f"{path}: lists no models")
    return groups


# --------------------------------------------------------------------------- label files

def read_phn(path, sample_rate: int) -> list[tuple[float, float, str]]:
    """TIMIT ``.phn``/``.wrd`` alignments (``start end label``, in samples) as ``(start_s, end_s, label)``."""
    return _read_alignment(path, sample_rate)


def read_htk_lab(path) -> list[tuple[float, float, str]]:
    """HTK ``.lab`` alignments (``start end label [score]``, in 100 ns units) as ``(start_s, end_s, label)``."""
    return _read_alignment(path, 10_000_000)


def _read_alignment(path, per_second: float) -> list[tuple[float, float, str]]:
    out = []
    path = Path(path)
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        parts = line.split()
        if not parts or parts[0] == ".":  # blank lines; the '.' that ends an HTK master label file entry
            continue
        if len(parts) < 3:
            raise ManifestError(f"{path}:{lineno}: expected 'start end label', got {line.strip()!r}")
        try:
            start, end = int(parts[0]), int(parts[1])
        except ValueError:
            raise ManifestError(f"{path}:{lineno}: start and end must be integers, got {parts[0]!r} {parts[1]!r}") from None
        if not 0 <= start < end:
            raise ManifestError(f"{path}:{lineno}: need 0 <= start < end, got {start} {end}")
        out.append((start / per_second, end / per_second, parts[2]))
    return out
