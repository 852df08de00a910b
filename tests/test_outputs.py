"""The library's side of the one output policy: a failed or killed write leaves the old file and no temporary or
lock file.  The commands' side (nothing replaced unasked, no input overwritten, one writer at a time, no traceback
reaching a user) is in cli/test_main.py."""

import os

import numpy as np
import pytest

from acoustic_gmm import GMM
from acoustic_gmm.errors import OutputError
from acoustic_gmm.storage import atomic_path, check_outputs


@pytest.mark.slow
def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    out = tmp_path / "g.h5"
    stale = tmp_path / ".g.h5.k1ll3d.tmp"   # what a kill -9 during a save leaves
    stale.write_bytes(b"half a model")
    GMM(2).fit(np.random.default_rng(0).normal(size=(200, 3))).save(out)
    assert sorted(os.listdir(tmp_path)) == ["g.h5"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_or_lock_file(tmp_path):
    out = tmp_path / "t.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            open(tmp, "w").write("new, half")
            raise RuntimeError("killed")
    assert out.read_text() == "old" and os.listdir(tmp_path) == ["t.txt"]
    with pytest.raises(OutputError, match="is a directory"):
        with atomic_path(tmp_path):
            pass
    with pytest.raises(OutputError, match=r"named for two outputs"):
        check_outputs({str(out): "--metrics", f"{tmp_path}/./t.txt": "--det"}, overwrite=True)
