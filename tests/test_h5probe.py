"""The child-process probe that keeps a damaged HDF5 file from hanging or crashing us."""

from __future__ import annotations

import os
import signal
import time

import h5py
import numpy as np
import pytest

from acoustic_gmm import GMM, ModelFileError
from acoustic_gmm.errors import ArchiveError
from acoustic_gmm.storage import _probe as h5probe
from acoustic_gmm.storage import open_h5


def _zero_step_heap(path):
    """A file whose global heap has a free-space object of size 0: libhdf5's parser never moves on."""
    with h5py.File(path, "w") as f:
        f.attrs["content"] = "models"
        f.attrs["note"] = "diag"  # a variable-length string: stored in a global heap collection
    data = bytearray(path.read_bytes())
    at = data.index(b"GCOL")
    first = at + 16  # the collection's header: signature, version, 3 reserved bytes, 8-byte size
    data[first:first + 2] = b"\0\0"            # object index 0 (free space) ...
    data[first + 8:first + 16] = bytes(8)      # ... of size 0
    path.write_bytes(bytes(data))


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setattr(h5probe, "PROBE_SECONDS", 1.0)
    monkeypatch.setattr(h5probe, "_probed", set())


def test_a_file_that_hangs_libhdf5_is_refused(tmp_path, quick):
    bad = tmp_path / "hang.h5"
    _zero_step_heap(bad)
    t0 = time.monotonic()
    with pytest.raises(ModelFileError, match=r"hang\.h5: corrupt: reading its HDF5 metadata did not finish"):
        GMM.load(bad)
    assert time.monotonic() - t0 < 10
    with pytest.raises(ArchiveError, match="did not finish"):  # every kind of file goes through the probe
        open_h5(bad, "features")


def test_a_file_that_crashes_the_reader_is_refused(tmp_path, quick, monkeypatch):
    good = tmp_path / "m.h5"
    GMM(2, random_state=0).fit(np.random.default_rng(0).normal(size=(50, 3))).save(good)
    # stands in for the flipped bits that make libhdf5 read out of bounds: the child dies by a signal
    monkeypatch.setattr(h5probe, "_walk", lambda path, beat: os.kill(os.getpid(), signal.SIGSEGV))
    with pytest.raises(ModelFileError, match=r"m\.h5: corrupt: reading its HDF5 metadata crashed libhdf5 \(SIGSEGV"):
        GMM.load(good)


def test_a_sound_file_is_probed_once_and_loads(tmp_path, quick, monkeypatch):
    good = tmp_path / "m.h5"
    GMM(2, random_state=0).fit(np.random.default_rng(0).normal(size=(50, 3))).save(good)
    forks = []
    real_fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or real_fork())
    a, b = GMM.load(good), GMM.load(good)
    assert len(forks) == 1  # the second load trusts the first probe: same inode, size and mtime
    np.testing.assert_array_equal(a.means_, b.means_)
    GMM(3, random_state=0).fit(np.random.default_rng(1).normal(size=(50, 3))).save(good)
    assert GMM.load(good).n_components == 3 and len(forks) == 2  # a rewritten file is probed again

