"""Kaldi interoperability: ark/scp features out and back in (read by kaldiio itself), DiagGmm text models."""

from __future__ import annotations

import math
import re
import sys

import numpy as np
import pytest

from acoustic_gmm.errors import ArchiveError, DataError, ModelFileError, OutputError, ParameterError
from acoustic_gmm.features import MfccConfig
from acoustic_gmm.gmm import DiagGMM
from acoustic_gmm.interop import read_diag_gmm, write_diag_gmm
from acoustic_gmm.interop._kaldi import diag_gmm_gconsts, export_kaldi, import_kaldi
from acoustic_gmm.storage import FeatureArchive, write_data_dir, write_features

D = 5


def make_archive(path, seed=0):
    """Six utterances of random float32 frames (lengths 3..40), two speakers, three labels."""
    rng = np.random.default_rng(seed)
    utts = []
    for i in range(6):
        X = rng.normal(size=(int(rng.integers(3, 41)), D)).astype("f4") * 10 ** rng.uniform(-3, 3)
        utts.append((f"spk{i % 2}-utt{i}", X, f"w{i % 3}", f"spk{i % 2}"))
    write_features(path, utts, config=MfccConfig(n_mfcc=D, n_mels=10, deltas=0), sample_rate=8000)
    return utts


def make_data_dir(path, utts, extra=(), rate=16000):
    """A data directory for ``utts`` (+ ``extra`` ids without features), with real (tiny) audio files."""
    import soundfile as sf

    wav = {}
    for utt in [u for u, *_ in utts] + list(extra):
        wav[utt] = path / "wav" / f"{utt}.wav"
        wav[utt].parent.mkdir(parents=True, exist_ok=True)
        sf.write(wav[utt], np.full(160, 0.1, dtype="f4"), rate)
    spk = {u: s for u, _, _, s in utts} | {u: "other" for u in extra}
    lab = {u: l for u, _, l, _ in utts} | {u: "w9" for u in extra}
    write_data_dir(path / "data", wav, utt2spk=spk, utt2label=lab)
    return path / "data"


@pytest.fixture
def exported(tmp_path):
    pytest.importorskip("kaldiio")
    utts = make_archive(tmp_path / "feats.h5")
    ark = tmp_path / "kaldi" / "feats.ark"
    ark.parent.mkdir()
    assert export_kaldi(tmp_path / "feats.h5", ark) == len(utts)
    return utts, ark


# --------------------------------------------------------------------------- features

def test_an_exported_ark_and_scp_read_back_by_kaldiio_give_the_same_matrices(exported):
    import kaldiio

    utts, ark = exported
    scp = ark.with_suffix(".scp")
    assert sorted(p.name for p in ark.parent.iterdir()) == ["feats.ark", "feats.scp"]  # no temporaries left
    from_ark = dict(kaldiio.load_ark(str(ark)))
    from_scp = kaldiio.load_scp(str(scp))
    assert list(from_ark) == list(from_scp) == [u for u, *_ in utts]
    for utt, X, _, _ in utts:
        for got in (from_ark[utt], from_scp[utt]):
            assert got.dtype == np.float32 and np.array_equal(got, X)
    # the script file points into the final archive, not the temporary it was written as
    assert {line.split()[1].rsplit(":", 1)[0] for line in scp.read_text().splitlines()} == {str(ark.absolute())}


def test_export_a_subset_without_a_script_file(tmp_path):
    kaldiio = pytest.importorskip("kaldiio")
    utts = make_archive(tmp_path / "feats.h5")
    ark = tmp_path / "sub.ark"
    assert export_kaldi(tmp_path / "feats.h5", ark, scp=False, ids=["spk1-utt3", "spk0-utt0"]) == 2
    assert not (tmp_path / "sub.scp").exists()
    got = dict(kaldiio.load_ark(str(ark)))
    assert list(got) == ["spk1-utt3", "spk0-utt0"]
    assert np.array_equal(got["spk1-utt3"], utts[3][1])
    with pytest.raises(DataError, match="not in"):
        export_kaldi(tmp_path / "feats.h5", tmp_path / "x.ark", ids=["nobody"])
    with pytest.raises(ParameterError, match=r"\.scp"):
        export_kaldi(tmp_path / "feats.h5", tmp_path / "x.scp")


@pytest.mark.parametrize("source", ["scp", "ark"])
def test_importing_the_export_with_its_data_dir_gives_the_original_archive(exported, tmp_path, source):
    utts, ark = exported
    data = make_data_dir(tmp_path, utts, extra=["spk9-lost"])
    out = tmp_path / f"back_{source}.h5"
    report = import_kaldi(ark.with_suffix(f".{source}"), data, out)
    assert report.n_utterances == len(utts) and report.missing == ["spk9-lost"]
    with FeatureArchive(out) as fa:
        assert fa.ids == [u for u, *_ in utts]
        assert fa.speakers == {u: s for u, _, _, s in utts}
        assert fa.labels == {u: l for u, _, l, _ in utts}
        for utt, X, _, _ in utts:
            assert np.array_equal(fa[utt], X)
        assert fa.sample_rate == 16000  # from the data directory's audio
        assert fa.config.n_features == D and fa.config.deltas == 0 and fa.config.cmvn == "none"
        assert [s[0] for s in fa.skipped] == ["spk9-lost"]
        assert ("feats.scp" in fa.manifest) == (source == "scp") and "utt2spk" in fa.manifest


def test_import_refuses_foreign_utterances_an_existing_output_and_a_wrong_config(exported, tmp_path):
    utts, ark = exported
    data = make_data_dir(tmp_path, utts[:3])  # the other three are not in it
    for src in (ark.with_suffix(".scp"), ark):
        with pytest.raises(DataError, match=r"3 utterance\(s\) are not in the data directory.*spk1-utt3"):
            import_kaldi(src, data, tmp_path / "x.h5", sample_rate=8000)
        assert not (tmp_path / "x.h5").exists()
    data = make_data_dir(tmp_path / "full", utts)
    (tmp_path / "taken.h5").write_text("")
    with pytest.raises(OutputError, match="exists"):
        import_kaldi(ark, data, tmp_path / "taken.h5")
    with pytest.raises(ParameterError, match="5 columns"):
        import_kaldi(ark, data, tmp_path / "y.h5", config=MfccConfig(n_mfcc=13))
    import_kaldi(ark, data, tmp_path / "z.h5", config=MfccConfig(n_mfcc=D, n_mels=10, deltas=0), sample_rate=8000)
    with FeatureArchive(tmp_path / "z.h5") as fa:
        assert fa.config == MfccConfig(n_mfcc=D, n_mels=10, deltas=0) and fa.sample_rate == 8000


def test_without_kaldiio_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "kaldiio", None)  # import kaldiio now raises ImportError
    with pytest.raises(ParameterError, match=r"pip install 'acoustic-gmm\[kaldi\]'"):
        export_kaldi(tmp_path / "feats.h5", tmp_path / "feats.ark")


# --------------------------------------------------------------------------- DiagGmm text format

def random_gmm(K=4, d=3, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(K))
    return w, rng.normal(size=(K, d)) * 3, rng.uniform(0.1, 5.0, size=(K, d))


def block(text, token):
    """The numbers of ``<TOKEN> [ ... ]`` in a Kaldi text object."""
    return np.array(re.search(re.escape(token) + r"\s*\[([^\]]*)\]", text).group(1).split(), dtype=float)


def test_diag_gmm_text_round_trip_gives_the_same_scores_and_kaldis_layout(tmp_path):
    w, m, v = random_gmm()
    path = tmp_path / "ubm.txt"
    write_diag_gmm(path, w, m, v)
    text = path.read_text()
    assert text.startswith("<DiagGMM> \n<GCONSTS>  [ ") and text.endswith("]\n</DiagGMM> \n")
    assert "\n<WEIGHTS>  [ " in text and "\n<MEANS_INVVARS>  [\n  " in text and "\n<INV_VARS>  [\n  " in text
    assert len(re.search(r"<INV_VARS>  \[\n(.*?)\]", text, re.DOTALL).group(1).splitlines()) == 4  # a row per component
    # GCONSTS as Kaldi defines them, computed here independently, component by component
    expected = [math.log(w[k]) - 0.5 * (3 * math.log(2 * math.pi) + sum(math.log(x) for x in v[k]))
                - 0.5 * sum(mu * mu / x for mu, x in zip(m[k], v[k])) for k in range(4)]
    np.testing.assert_allclose(block(text, "<GCONSTS>"), expected, rtol=1e-13)
    np.testing.assert_allclose(diag_gmm_gconsts(w, m, v), expected, rtol=1e-13)
    np.testing.assert_allclose(block(text, "<INV_VARS>").reshape(4, 3), 1 / v, rtol=1e-15)
    w2, m2, v2 = read_diag_gmm(path)
    X = np.random.default_rng(1).normal(size=(500, 3)) * 4
    before = DiagGMM(w, m, v, dtype="float64").score_samples(X)
    after = DiagGMM(w2, m2, v2, dtype="float64").score_samples(X)
    np.testing.assert_allclose(after, before, rtol=1e-10)
    np.testing.assert_allclose(m2, m, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(v2, v, rtol=1e-14)


# 2 components, 3 dimensions: weights .25 .75; means (1, 2, 3), (0, -1, .5); variances (1, 2, 4), (.5, 1, .25).
# MEANS_INVVARS = mean / var, INV_VARS = 1 / var; GCONSTS (6 digits, as Kaldi writes them):
#   log .25 - 1.5 log 2pi - .5 log 8    - .5 (1 + 2 + 2.25) = -7.80783
#   log .75 - 1.5 log 2pi - .5 log .125 - .5 (0 + 1 + 1)    = -3.00478
HAND = """<DiagGMM>
<GCONSTS>  [ -7.80783 -3.00478 ]
<WEIGHTS>  [ 0.25 0.75 ]
<MEANS_INVVARS>  [
  1 1 0.75
  0 -1 2 ]
<INV_VARS>  [
  1 0.5 0.25
  2 1 4 ]
</DiagGMM>
"""


def test_a_hand_written_kaldi_model_parses_to_its_parameters(tmp_path):
    variants = {
        "kaldi.txt": HAND,
        "spacing.txt": HAND.replace("  [ ", "\t[").replace(" ]", "]").replace("\n  ", "\n") + "\n\n",
        "no_gconsts.txt": re.sub(r"<GCONSTS>.*\n", "", HAND),
        "old_tokens.txt": HAND.replace("<DiagGMM>", "<DiagGMMBegin>").replace("</DiagGMM>", "<DiagGMMEnd>"),
    }
    for name, text in variants.items():
        (tmp_path / name).write_text(text)
        w, m, v = read_diag_gmm(tmp_path / name)
        assert w.tolist() == [0.25, 0.75], name
        assert m.tolist() == [[1, 2, 3], [0, -1, 0.5]], name
        assert v.tolist() == [[1, 2, 4], [0.5, 1, 0.25]], name


def test_wrong_gconsts_binary_and_damaged_models_are_refused(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text(HAND.replace("-3.00478", "-3.01478"))
    with pytest.raises(ModelFileError, match=r"bad.txt: <GCONSTS> disagree .* 1 of 2 component\(s\) \(component 1"):
        read_diag_gmm(bad)
    binary = tmp_path / "final.dubm"
    binary.write_bytes(b"\0B<DiagGMM> <GCONSTS> FV \x02\x00\x00\x00")
    with pytest.raises(ModelFileError, match=r"final.dubm: .*binary.*gmm-global-copy --binary=false"):
        read_diag_gmm(binary)
    cases = {"truncated": (HAND[:HAND.index("<INV_VARS>")], "truncated"),
             "shapes": (HAND.replace("0 -1 2 ]", "0 -1 ]"), "MEANS_INVVARS"),
             "word": (HAND.replace("0.75\n", "abc\n"), "'abc' is not a number"),
             "full": (HAND.replace("<DiagGMM>", "<FullGMM>"), "full-covariance"),
             "weights": (HAND.replace("0.75 ]", "0.95 ]"), "sum to 1.2"),
             "negative": (HAND.replace("2 1 4 ]", "2 -1 4 ]"), "INV_VARS")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ModelFileError, match=message):
            read_diag_gmm(tmp_path / name)
    with pytest.raises(ModelFileError, match="no such file"):
        read_diag_gmm(tmp_path / "missing.txt")


def test_zero_weight_components_round_trip_with_kaldis_minus_inf(tmp_path):
    w, m, v = random_gmm(3, 2, seed=3)
    w = np.array([0.0, w[1] + w[0], w[2]])
    write_diag_gmm(tmp_path / "z.txt", w, m, v)
    assert block((tmp_path / "z.txt").read_text(), "<GCONSTS>")[0] == -np.inf
    w2, m2, v2 = read_diag_gmm(tmp_path / "z.txt")
    assert w2[0] == 0 and np.allclose(w2, w, rtol=1e-15) and np.allclose(m2, m) and np.allclose(v2, v)
    with pytest.raises(ParameterError, match="not positive"):
        write_diag_gmm(tmp_path / "x.txt", w, m, -v)


def test_a_matrix_of_no_frames_is_refused_at_import_by_its_id(tmp_path):
    kaldiio = pytest.importorskip("kaldiio")
    utts = [(f"spk0-utt{i}", np.ones((4, D), "f4"), "w0", "spk0") for i in range(3)]
    data = make_data_dir(tmp_path, utts)
    ark = tmp_path / "feats.ark"
    with kaldiio.WriteHelper(f"ark,scp:{ark},{tmp_path / 'feats.scp'}") as w:
        for i, (u, x, _, _) in enumerate(utts):
            w(u, x[:0] if i == 1 else x)  # Kaldi writes empty matrices; training then failed on "utterance 1"
    with pytest.raises(DataError, match=r"feats\.scp: entry 'spk0-utt1' has no frames \(a 0 x 5 matrix\)"):
        import_kaldi(tmp_path / "feats.scp", data, tmp_path / "x.h5", sample_rate=16000)
    assert not (tmp_path / "x.h5").exists()


def test_a_script_entry_past_the_end_of_its_ark_is_named_by_its_own_id(tmp_path):
    kaldiio = pytest.importorskip("kaldiio")
    utts = [(f"spk0-utt{i}", np.ones((4, D), "f4"), "w0", "spk0") for i in range(3)]
    data = make_data_dir(tmp_path, utts)
    ark, scp = tmp_path / "feats.ark", tmp_path / "feats.scp"
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as w:
        for u, x, _, _ in utts:
            w(u, x)
    lines = scp.read_text().splitlines()
    lines[1] = f"spk0-utt1 {ark}:{ark.stat().st_size + 1000}"  # an offset past the end of the ark
    scp.write_text("\n".join(lines) + "\n")
    with pytest.raises(ArchiveError) as err:  # was "... after entry 'spk0-utt0' (AssertionError: )"
        import_kaldi(scp, data, tmp_path / "x.h5", sample_rate=16000)
    assert "feats.scp: cannot be read as Kaldi features at entry 'spk0-utt1' (the script's entry 2)" in str(err.value)
    assert "AssertionError: )" not in str(err.value) and not (tmp_path / "x.h5").exists()
