"""The loaders under damage: how long the fuzz test's 360 corruptions take, beside loading the same files intact.

Every load of a damaged file goes through the HDF5 probe (a forked child reads the metadata first, so a file
that hangs or crashes libhdf5 is refused instead of taking the process down); this prints what that costs per
file against a plain load of the undamaged one, and the whole loop against the 30 s the test suite once
asserted (a time is a benchmark's business, not a test's).

    .venv/bin/python bench/bench_fuzz.py
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acoustic_gmm import AcousticGMMError  # noqa: E402
from acoustic_gmm.storage import _probe  # noqa: E402
from tests.test_fuzz import PER_FILE, SEED, _corrupt, _load, make_good_files  # noqa: E402

BUDGET_S = 30.0  # what the test suite asserted before the timing moved here


def main() -> None:
    _probe.PROBE_SECONDS = 2.0  # as the test: this seed's flips include files that hang libhdf5
    with tempfile.TemporaryDirectory() as tmp:
        files, ubm = make_good_files(Path(tmp))
        clean = {}
        for kind, path in files.items():
            t0 = time.perf_counter()
            for _ in range(5):
                _probe._probed.clear()  # a new process's first open: the probe runs
                _load(kind, path, ubm)
            clean[kind] = (time.perf_counter() - t0) / 5
        rng = np.random.default_rng(SEED)
        damaged, outcomes = {}, {"loaded": 0, "refused": 0}
        t_all = time.perf_counter()
        for kind, path in files.items():
            good, bad = path.read_bytes(), Path(tmp) / f"bad-{path.name}"
            t0 = time.perf_counter()
            for _ in range(PER_FILE):
                _corrupt(bad, good, rng)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        _load(kind, bad, ubm)
                    outcomes["loaded"] += 1
                except AcousticGMMError:
                    outcomes["refused"] += 1
            damaged[kind] = (time.perf_counter() - t0) / PER_FILE
        total = time.perf_counter() - t_all
    print(f"{4 * PER_FILE} corruptions (seed {SEED}): {outcomes}")
    print(f"{'file':10s} {'intact ms':>10s} {'damaged ms':>11s} {'x intact':>9s}")
    for kind in files:
        print(f"{kind:10s} {1e3 * clean[kind]:10.1f} {1e3 * damaged[kind]:11.1f} {damaged[kind] / clean[kind]:9.1f}")
    print(f"whole loop {total:.1f} s against a budget of {BUDGET_S:.0f} s: {total / BUDGET_S:.2f} of it")


if __name__ == "__main__":
    main()
