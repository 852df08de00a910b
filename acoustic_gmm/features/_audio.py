"""Reading audio: whole files or slices (:func:`read_audio`), or a file a block at a time (:class:`AudioFile`).

Everything comes out as float32 mono in [-1, 1] (channels averaged).  16-bit PCM and 32-bit float WAV
files, what speech corpora are made of, are read with numpy (a tenth of the cost of opening them with
soundfile, which a corpus of 0.4 s files feels; the same samples, a test checks); anything else through
soundfile.  A file that cannot be used is a :class:`~acoustic_gmm.errors.DataError` naming it: unreadable,
truncated (a WAV whose header announces more audio than it holds), no samples, NaN or inf samples, digital
silence.

Examples
--------
::

    y, sr = read_audio("a.wav")               # whole file
    with AudioFile("long.wav") as audio:      # hours, in bounded memory
        while len(block := audio.read(1 << 16)):
            ...
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError

__all__ = ["read_audio", "AudioFile"]


def _cannot_read(path, exc: Exception) -> DataError:
    reason = str(exc).replace(f"Error opening {str(path)!r}: ", "")
    return DataError(f"{path}: cannot read audio ({reason})")


def read_audio(path, start: float | None = None, end: float | None = None) -> tuple[np.ndarray, int]:
    """Read a sound file as float32 mono in [-1, 1] (stereo is averaged), optionally a slice in seconds.

    The whole file (or slice) is held in memory: for long recordings, :func:`analyse_file`
    computes the frames from blocks instead.  Raises :class:`DataError` naming the file for
    anything soundfile cannot read, or an empty file.
    """
    import soundfile as sf

    try:
        with sf.SoundFile(path) as f:
            sr = f.samplerate
            if f.format == "WAV":
                _check_wav_length(path)
            first = 0 if start is None else int(round(start * sr))
            last = f.frames if end is None else min(f.frames, int(round(end * sr)))
            if first:
                f.seek(first)
            y = f.read(max(0, last - first), dtype="float32", always_2d=True)
    except DataError:
        raise
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError ...
        raise _cannot_read(path, exc) from None
    y = _mono(y)
    if len(y) == 0:
        raise DataError(f"{path}: no samples" + ("" if start is None else f" between {start} s and {end} s"))
    return y, sr


def _mono(y: np.ndarray) -> np.ndarray:
    """(n, channels) -> (n,): the channels' average (row by row, so the same in blocks as at once)."""
    return y.mean(axis=1, dtype=np.float32) if y.shape[1] > 1 else y[:, 0]


def _check_wav_length(path) -> None:
    """Raise if a RIFF file's data chunk declares more bytes than the file holds.

    libsndfile quietly reads what is there, so a cut-off upload would pass for a short one.
    """
    import struct

    with open(path, "rb") as fh:
        head = fh.read(4096)
        size = fh.seek(0, 2)
    pos = 12
    while pos + 8 <= len(head):
        tag, length = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
        if tag == b"data":
            have = size - pos - 8
            if length not in (0, 0xFFFFFFFF) and have < length:  # 0 / ~0: length unknown (streamed)
                raise DataError(f"{path}: truncated: the header announces {length} bytes of audio, "
                                f"the file holds {have}")
            return
        pos += 8 + length + (length & 1)


def _plain_wav(path):
    """How to read a WAV file with numpy exactly as libsndfile would, or None to leave it to soundfile.

    16-bit PCM (libsndfile's float is ``2**-15 * sample``, exact) and 32-bit float, with the
    data chunk's length known and its header within the first 4 kB: what speech corpora are
    made of.  Opening a file this way costs a tenth of opening it with soundfile, which a
    corpus of 0.4 s files feels.  Returns ``(file, n_frames, channels, rate, dtype, scale)``
    with the file open at the first sample, and raises the truncated-file :class:`DataError`
    as :func:`_check_wav_length` does.
    """
    import struct

    fh = open(path, "rb")
    try:
        head = fh.read(4096)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            fh.close()
            return None
        layout, pos = None, 12
        while pos + 8 <= len(head):
            tag, length = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
            if tag == b"fmt " and length >= 16 and pos + 8 + length <= len(head):
                fmt, channels, rate, _, align, bits = struct.unpack("<HHIIHH", head[pos + 8:pos + 24])
                if fmt == 0xFFFE and length >= 40 and head[pos + 34:pos + 48] == _KS_GUID_TAIL:
                    fmt = struct.unpack("<H", head[pos + 32:pos + 34])[0]  # WAVE_FORMAT_EXTENSIBLE's sub-format
                if fmt in (1, 3) and bits % 8 == 0 and channels >= 1 and align != bits // 8 * channels:
                    # libsndfile reads such a file, as garbage: a frame of the wrong size
                    raise DataError(f"{path}: damaged WAV header: {channels} channel(s) of {bits} bits make "
                                    f"{bits // 8 * channels}-byte frames, the header says {align}")
                kind = {(1, 16): ("<i2", 2.0 ** -15), (3, 32): ("<f4", None)}.get((fmt, bits))
                if kind and channels >= 1 and rate > 0 and align == bits // 8 * channels:
                    layout = (channels, rate, align) + kind
            elif tag == b"data":
                size = fh.seek(0, 2)
                have = size - pos - 8
                if length not in (0, 0xFFFFFFFF) and have < length:  # 0 / ~0: length unknown (streamed)
                    raise DataError(f"{path}: truncated: the header announces {length} bytes of audio, "
                                    f"the file holds {have}")
                if layout is None or length in (0, 0xFFFFFFFF):
                    break
                channels, rate, align, dtype, scale = layout
                fh.seek(pos + 8)
                return fh, length // align, channels, rate, dtype, scale
            pos += 8 + length + (length & 1)
        fh.close()
        return None
    except BaseException:
        fh.close()
        raise


_KS_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")  # KSDATAFORMAT_SUBTYPE_* after their 2-byte tag


class AudioFile:
    """A sound file read from start to end in blocks, as float32 mono (stereo averaged, as :func:`read_audio`).

    It counts non-finite and non-zero samples as they go by, so that :meth:`check` rejects
    what :func:`check_signal` would without the whole signal ever being in memory.  Opening
    raises :class:`DataError` naming the file for anything soundfile cannot read, a truncated
    WAV file, or a file without samples.  16-bit and float WAV files are read with numpy
    (the same samples as soundfile gives, a test checks it), anything else with soundfile.

    Examples
    --------
    ::

        with AudioFile("long.wav") as audio:
            audio.sample_rate, audio.n_samples      # (8000, 57600000)
            first_second = audio.read(8000)
    """

    def __init__(self, path):
        self.path = path
        self._file = self._raw = None
        try:
            plain = _plain_wav(path)
        except OSError as exc:
            raise _cannot_read(path, exc) from None
        if plain is not None:
            self._raw, self.n_samples, self._channels, self.sample_rate, dtype, self._scale = plain
            self._dtype = np.dtype(dtype)
        else:
            self._open_with_soundfile(path)
        self.n_read = 0
        self._non_finite = 0
        self._non_zero = False
        if self.n_samples == 0:
            self.close()
            raise DataError(f"{path}: no samples")

    def _open_with_soundfile(self, path) -> None:
        import soundfile as sf

        try:
            self._file = sf.SoundFile(path)
        except Exception as exc:
            raise _cannot_read(path, exc) from None
        try:
            if self._file.format == "WAV":
                _check_wav_length(path)
        except Exception as exc:
            self._file.close()
            raise exc if isinstance(exc, DataError) else _cannot_read(path, exc) from None
        self.sample_rate = int(self._file.samplerate)
        self.n_samples = int(self._file.frames)  # as the header announces; read() never goes past it

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` samples (fewer at the end of the file), float32 mono."""
        n = max(0, min(int(n), self.n_samples - self.n_read))
        try:
            if self._raw is not None:
                data = self._raw.read(n * self._channels * self._dtype.itemsize)
                x = np.frombuffer(data, dtype=self._dtype, count=len(data) // self._dtype.itemsize)
                x = x[: len(x) - len(x) % self._channels].astype(np.float32)
                if self._scale is not None:
                    x *= np.float32(self._scale)
                y = _mono(x.reshape(-1, self._channels))
            else:
                y = _mono(self._file.read(n, dtype="float32", always_2d=True))
        except Exception as exc:
            raise _cannot_read(self.path, exc) from None
        self.n_read += len(y)
        self._non_finite += len(y) - int(np.count_nonzero(np.isfinite(y)))
        if not self._non_zero:
            self._non_zero = bool(y.any())
        return y

    def read_rest(self, block: int = 1 << 20) -> None:
        """Read (and count) what is left, a block at a time: the checks cover every sample."""
        while self.n_read < self.n_samples:
            if len(self.read(block)) == 0:
                break

    def check(self, where=None) -> None:
        """Raise what :func:`check_signal` would for the samples read so far (NaN or inf, digital silence)."""
        where = self.path if where is None else where
        if self.n_read == 0:
            raise DataError(f"{where}: no samples")
        if self._non_finite:
            raise DataError(f"{where}: {self._non_finite} of {self.n_read} samples are NaN or inf")
        if not self._non_zero:
            raise DataError(f"{where}: all {self.n_read} samples are zero (digital silence)")

    def close(self) -> None:
        for f in (self._raw, self._file):
            if f is not None:
                f.close()

    def __enter__(self) -> "AudioFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_signal(y: np.ndarray, where: str) -> None:
    """Reject signals no feature can be computed from: non-finite samples, digital silence."""
    finite = np.isfinite(y)
    if not finite.all():
        raise DataError(f"{where}: {int((~finite).sum())} of {len(y)} samples are NaN or inf")
    if not y.any():
        raise DataError(f"{where}: all {len(y)} samples are zero (digital silence)")
