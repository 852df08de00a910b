"""`acoustic-gmm export`, `import`, `export-model` and `import-model`: features and models to and from Kaldi and
HTK from the command line, and what becomes of the features imported."""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_gmm import GMM
from acoustic_gmm.interop import read_diag_gmm, read_htk, read_mmf
from acoustic_gmm.storage import FeatureArchive

from ..conftest import invoke as run  # the name test_toolkits.py gave the same helper
from ..test_kaldi import make_archive, make_data_dir


def same_archive(a, b):
    with FeatureArchive(a) as x, FeatureArchive(b) as y:
        assert x.ids == y.ids and x.speakers == y.speakers and x.labels == y.labels
        for u in x.ids:
            np.testing.assert_array_equal(x[u], y[u])


@pytest.mark.parametrize("fmt", ["kaldi", "htk"])
def test_export_then_import_gives_the_original_archive(tmp_path, fmt):
    if fmt == "kaldi":
        kaldiio = pytest.importorskip("kaldiio")
    utts = make_archive(tmp_path / "feats.h5")
    data = make_data_dir(tmp_path, utts)
    out = tmp_path / ("k/feats.ark" if fmt == "kaldi" else "htk")
    r = run("export", tmp_path / "feats.h5", "--format", fmt, "--out", out)
    assert r.exit_code == 0, r.output
    if fmt == "kaldi":
        for src in (kaldiio.load_ark(str(out)), kaldiio.load_scp(str(out.with_suffix(".scp"))).items()):
            got = dict(src)
            assert sorted(got) == sorted(u for u, *_ in utts)
            for u, X, *_ in utts:
                np.testing.assert_array_equal(got[u], X)
        listing = out.with_suffix(".scp")
    else:
        for u, X, *_ in utts:
            Y, info = read_htk(out / f"{u}.htk")
            np.testing.assert_array_equal(Y, X)
            assert info["kind"] == "USER" and info["period_s"] == pytest.approx(0.01)
        listing = tmp_path / "htk.list"
        listing.write_text("".join(f"{out / u}.htk\n" for u, *_ in utts))
    r = run("import", listing, data, "--format", fmt, "--sample-rate", 8000, "--out", tmp_path / "back.h5")
    assert r.exit_code == 0, r.output
    assert f"{len(utts)} utterances imported" in r.output
    same_archive(tmp_path / "feats.h5", tmp_path / "back.h5")
    # outputs are never replaced unasked
    r = run("import", listing, data, "--format", fmt, "--out", tmp_path / "back.h5")
    assert r.exit_code == 1 and "exists; pass --overwrite" in r.output
    r = run("export", tmp_path / "feats.h5", "--format", fmt, "--out", out)
    assert r.exit_code == 1 and ("--overwrite" in r.output) and "Traceback" not in r.output


@pytest.mark.parametrize("fmt", ["kaldi", "htk"])
def test_a_model_out_and_back_scores_the_same(tmp_path, fmt):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(2000, 4)) * [1, 2, 3, 4] + [0, 1, 2, 3]
    g = GMM(8, dtype="float64", random_state=0).fit(X)
    g.save(tmp_path / "ubm.h5", name="ubm")
    out = tmp_path / ("ubm.txt" if fmt == "kaldi" else "ubm.mmf")
    r = run("export-model", tmp_path / "ubm.h5", "--format", fmt, "--out", out)
    assert r.exit_code == 0, r.output
    w, m, v = read_diag_gmm(out) if fmt == "kaldi" else read_mmf(out)[:3]
    np.testing.assert_allclose(m, g.means_, rtol=1e-12)
    r = run("import-model", out, "--format", fmt, "--name", "ubm", "--out", tmp_path / "back.h5")
    assert r.exit_code == 0, r.output
    back = GMM.load(tmp_path / "back.h5", name="ubm")
    np.testing.assert_allclose(back.model_.weights, g.weights_, rtol=1e-6)
    np.testing.assert_allclose(back.score_samples(X[:50]), g.score_samples(X[:50]), rtol=1e-5)


def test_features_with_an_hcopy_configuration_export_with_htks_kind(tmp_path):
    import soundfile as sf

    from acoustic_gmm.features import parse_kind
    from acoustic_gmm.storage import write_data_dir

    from ..conftest import tone

    wav = {}
    for i in range(3):
        wav[f"u{i}"] = tmp_path / f"u{i}.wav"
        sf.write(wav[f"u{i}"], tone(0.5, sr=16000, freq=300 + 100 * i, seed=i), 16000, subtype="PCM_16")
    write_data_dir(tmp_path / "data", wav)
    conf = tmp_path / "hcopy.conf"
    conf.write_text("# HTK Book style\nSOURCEFORMAT = WAV\nHPARM: TARGETKIND = MFCC_E_D_A\nTARGETRATE = 100000.0\n"
                    "WINDOWSIZE = 250000.0\nNUMCHANS = 26\nNUMCEPS = 12\nENORMALISE = F\n")
    r = run("features", tmp_path / "data", "--htk-config", conf, "--out", tmp_path / "f.h5")
    assert r.exit_code == 0, r.output
    with FeatureArchive(tmp_path / "f.h5") as fa:
        assert fa.n_features == 39 and fa.config.htk_kind == "MFCC_E_D_A" and fa.n_frames["u0"] == 48
    r = run("export", tmp_path / "f.h5", "--format", "htk", "--out", tmp_path / "htk")
    assert r.exit_code == 0, r.output
    X, info = read_htk(tmp_path / "htk" / "u0.htk")
    assert info["kind_code"] == parse_kind("MFCC_E_D_A") == 6 + 0o100 + 0o400 + 0o1000
    assert X.shape == (48, 39) and info["sample_size"] == 156 and info["period_s"] == pytest.approx(0.01)
    r = run("features", tmp_path / "data", "--htk-config", conf, "--config", conf, "--out", tmp_path / "g.h5")
    assert r.exit_code != 0 and "give one" in r.output
    conf.write_text("TARGETKIND = PLP_E\nTARGETRATE = 100000.0\n")
    r = run("features", tmp_path / "data", "--htk-config", conf, "--out", tmp_path / "g.h5")
    assert r.exit_code == 1 and "PLP" in r.output and "Traceback" not in r.output


def test_models_of_imported_features_refuse_to_compute_frames_from_audio(tmp_path):
    pytest.importorskip("kaldiio")
    from acoustic_gmm.errors import ParameterError
    from acoustic_gmm.features import extract_file
    from acoustic_gmm.storage import FeatureArchive as FA

    utts = make_archive(tmp_path / "feats.h5")
    data = make_data_dir(tmp_path, utts)
    assert run("export", tmp_path / "feats.h5", "--format", "kaldi", "--out", tmp_path / "f.ark").exit_code == 0
    assert run("import", tmp_path / "f.scp", data, "--sample-rate", 8000, "--out", tmp_path / "in.h5").exit_code == 0
    with FA(tmp_path / "in.h5") as fa:
        assert fa.config.computed_by == "Kaldi (f.scp)"
        config = fa.config
    r = run("train", tmp_path / "in.h5", "-k", "1", "--out", tmp_path / "m.h5")
    assert r.exit_code == 0, r.output
    wav = next((tmp_path / "wav").glob("*.wav"))
    with pytest.raises(ParameterError, match=r"computed by Kaldi \(f.scp\), not by acoustic_gmm"):
        extract_file(wav, config=config)
    r = run("classify", tmp_path / "m.h5", wav)
    assert r.exit_code == 1 and "computed by Kaldi (f.scp)" in r.output and "Traceback" not in r.output


def test_imported_htk_files_keep_their_frame_period(tmp_path):
    from acoustic_gmm.interop import write_htk

    utts = make_archive(tmp_path / "feats.h5")
    data = make_data_dir(tmp_path, utts)
    for u, X, *_ in utts:
        write_htk(tmp_path / f"{u}.htk", X, kind="USER", period_s=0.005)
    (tmp_path / "list").write_text("".join(f"{tmp_path / u}.htk\n" for u, *_ in utts))
    r = run("import", tmp_path / "list", data, "--format", "htk", "--sample-rate", 8000, "--out", tmp_path / "i.h5")
    assert r.exit_code == 0, r.output
    with FeatureArchive(tmp_path / "i.h5") as fa:
        assert fa.config.hop_ms == 5.0 and fa.config.computed_by == "HTK (list)"
