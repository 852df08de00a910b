"""Fuzzing the loaders: small real files written by the library, damaged at random (fixed seed).

Every outcome must be a valid load or one of the library's own errors (``AcousticGMMError``), never
another exception, a hang or a crash: truncation at random lengths, flipped bits at random offsets (some
of which hang or crash libhdf5 itself: :mod:`acoustic_gmm.storage`), and h5py-level edits (a dataset replaced by one of the wrong dtype or shape, a dataset or attribute deleted, an
attribute set to a value of the wrong type).
"""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest

from acoustic_gmm import GMM, AcousticGMMError
from acoustic_gmm.classes import ModelSet
from acoustic_gmm.features import MfccConfig, extract_file
from acoustic_gmm.interop import describe, format_description
from acoustic_gmm.speaker import load_speakers, load_ubm, map_adapt, save_speakers
from acoustic_gmm.storage import FeatureArchive, write_features
from acoustic_gmm.storage import _probe as h5probe

from .conftest import FSDD, needs_fsdd

SEED = 20261123
PER_FILE = 90  # corruptions of each of the four files: 360 in all


@pytest.fixture(scope="module")
def good_files(tmp_path_factory):
    return make_good_files(tmp_path_factory.mktemp("fuzz"))


def make_good_files(tmp):
    """A feature archive of four real FSDD recordings, and a GMM, a model set and speakers trained on it
    (``bench/bench_fuzz.py`` times the damage loop on the same files)."""
    cfg = MfccConfig()
    wavs = sorted(FSDD.glob("*.wav"))[:4]
    utts = [(w.stem, extract_file(w, config=cfg), w.stem.split("_")[0], w.stem.split("_")[1]) for w in wavs]
    files = {"features": tmp / "feats.h5"}
    write_features(files["features"], utts, config=cfg, sample_rate=8000,
                   skipped=[(f"bad{i}", f"/x/bad{i}.wav", "too short") for i in range(7)])
    with FeatureArchive(files["features"]) as fa:
        X = fa.frames()
        groups = {c: fa.frames(fa.ids_where(label=c)) for c in sorted(set(fa.labels.values()))}
    files["model"] = tmp / "ubm.h5"
    GMM(4, random_state=0).fit(X).save(files["model"], name="ubm", metadata={"feature_config": cfg.to_dict()})
    files["set"] = tmp / "set.h5"
    ModelSet({c: [GMM(2, random_state=0).fit(x).model_] for c, x in groups.items()}, config=cfg, sample_rate=8000,
             reject_threshold=0.1).save(files["set"])
    ubm = load_ubm(files["model"])
    files["speakers"] = tmp / "spk.h5"
    save_speakers(files["speakers"], {"a": map_adapt(ubm, X[:100], adapt="mwv"), "b": map_adapt(ubm, X[100:])},
                  ubm, adapt="mwv", relevance=16.0, metadata={"ubm": str(files["model"])})
    return files, ubm


def _load(kind, path, ubm):
    """Everything a user does with a file of this kind, through the library's loaders."""
    if kind == "features":
        with FeatureArchive(path) as fa:
            fa.frames()
            for _ in fa.iter_chunks(97):
                pass
    elif kind == "model":
        GMM.load(path).score_samples(np.zeros((2, 39)))
    elif kind == "set":
        ModelSet.load(path)
    else:
        load_speakers(path, ubm)
    format_description(describe(path))


def _members(f):
    """Every dataset and every object with attributes in an open HDF5 file."""
    datasets, objects = [], [f]
    f.visititems(lambda name, obj: (datasets if isinstance(obj, h5py.Dataset) else objects).append(obj) or None)
    return datasets, objects + datasets


WRONG_VALUES = [lambda r: "text", lambda r: int(r.integers(-5, 10**9)), lambda r: float(r.normal() * 1e300),
                lambda r: np.arange(3.0), lambda r: b"\xff\xfe", lambda r: "[1, 2]", lambda r: "{}",
                lambda r: np.nan, lambda r: True]


def _h5_edit(path, rng):
    with h5py.File(path, "r+") as f:
        datasets, objects = _members(f)
        op = rng.integers(4)
        if op == 0 and datasets:  # a dataset of the wrong dtype or shape
            ds = datasets[rng.integers(len(datasets))]
            name, parent = ds.name, ds.parent
            del f[name]
            choice = rng.integers(4)
            if choice == 0:
                parent[name] = np.array([b"x"] * int(rng.integers(1, 5)))
            elif choice == 1:
                parent[name] = rng.normal(size=tuple(rng.integers(1, 5, size=rng.integers(0, 4))))
            elif choice == 2:
                parent[name] = rng.integers(-3, 3, size=int(rng.integers(0, 6)))
            else:
                parent.create_dataset(name, shape=(10**9, 39), dtype="f4")
        elif op == 1 and datasets:
            del f[datasets[rng.integers(len(datasets))].name]
        else:
            obj = objects[rng.integers(len(objects))]
            keys = list(obj.attrs)
            if op == 2 and keys:
                del obj.attrs[keys[rng.integers(len(keys))]]
            elif keys:
                obj.attrs[keys[rng.integers(len(keys))]] = WRONG_VALUES[rng.integers(len(WRONG_VALUES))](rng)


def _corrupt(path, good: bytes, rng):
    path.write_bytes(good)
    how = int(rng.integers(3))
    if how == 0:
        path.write_bytes(good[:int(rng.integers(0, len(good)))])
    elif how == 1:
        data = bytearray(good)
        for offset in rng.integers(0, len(data), size=rng.integers(1, 8)):
            data[offset] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(data))
    else:
        _h5_edit(path, rng)
    return ("truncate", "flip", "h5py")[how]


@needs_fsdd
def test_loaders_survive_random_damage(good_files, tmp_path, monkeypatch):
    files, ubm = good_files
    monkeypatch.setattr(h5probe, "PROBE_SECONDS", 2.0)  # this seed's flips include files that hang libhdf5
    rng = np.random.default_rng(SEED)
    outcomes, failures = {"loaded": 0, "refused": 0}, []
    for kind, path in files.items():
        good = path.read_bytes()
        _load(kind, path, ubm)  # the undamaged file loads
        bad = tmp_path / f"bad-{path.name}"
        for i in range(PER_FILE):
            how = _corrupt(bad, good, rng)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    _load(kind, bad, ubm)
                outcomes["loaded"] += 1
            except AcousticGMMError as exc:
                outcomes["refused"] += 1
                assert str(bad) in str(exc) or str(files["model"]) in str(exc), f"{kind} {how}: {exc}"
            except Exception as exc:  # noqa: BLE001 - the point of the test
                failures.append(f"{kind} #{i} ({how}): {type(exc).__name__}: {exc}")
    assert not failures, f"{len(failures)} of {4 * PER_FILE}:\n" + "\n".join(failures[:20])
    assert sum(outcomes.values()) == 4 * PER_FILE >= 300  # its time is bench/bench_fuzz.py's
