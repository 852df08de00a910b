"""The command line: version, help, and a light start-up."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

import acoustic_gmm
from acoustic_gmm.cli import main


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"acoustic-gmm, version {acoustic_gmm.__version__}"


def test_help():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Gaussian-mixture acoustic modelling of speech" in result.output


def test_import_keeps_heavy_modules_lazy():
    code = ("import sys, acoustic_gmm.cli; "
            "print(sorted(m for m in ('h5py', 'librosa', 'scipy', 'sklearn', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
