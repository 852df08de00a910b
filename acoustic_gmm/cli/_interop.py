"""Commands over other toolkits' files: ``export``, ``import``, ``export-model``, ``import-model``, each a
call of :mod:`acoustic_gmm.interop`.
The output rules are the package's one policy, applied by the library functions themselves.
"""

from __future__ import annotations

import click

from ._main import errors_to_messages, id_list, writes

__all__ = ['FORMATS', 'export', 'import_', 'export_model', 'import_model']


# --------------------------------------------------------------------------- other toolkits

FORMATS = click.Choice(["kaldi", "htk"])


@click.command("export")
@click.argument("feats", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=FORMATS, required=True)
@click.option("--utts", type=click.Path(exists=True, dir_okay=False), help="these utterance ids only")
@click.option("--compress", is_flag=True, help="htk: HTK's 16-bit compressed parameter files (_C)")
@click.option("--out", "-o", required=True, type=click.Path(),
              help="kaldi: the .ark to write (the .scp goes beside it); htk: a folder for <utt>.htk files")
@click.option("--overwrite", is_flag=True, help="replace existing outputs")
@errors_to_messages
def export(feats, fmt, utts, compress, out, overwrite):
    """Write the features of FEATS for Kaldi (ark + scp) or HTK (one parameter file per utterance)."""
    from ..interop._toolkits import export_features

    click.echo(export_features(feats, out, fmt=fmt, ids=id_list(utts), compress=compress, overwrite=overwrite))


@click.command("import")
@click.argument("listing", metavar="FEATURES", type=click.Path(exists=True, dir_okay=False))
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=FORMATS, default="kaldi", show_default=True,
              help="kaldi: FEATURES is a feats.scp or .ark; htk: a list of parameter files ('file' or 'utt file')")
@click.option("--sample-rate", type=click.IntRange(min=1), help="the audio's rate [default: read from DATA_DIR's audio]")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="feature archive to write")
@click.option("--overwrite", is_flag=True, help="replace OUT (only once the new archive is complete)")
@errors_to_messages
def import_(listing, data_dir, fmt, sample_rate, out, overwrite):
    """Make a feature archive of features computed by Kaldi or HTK, with DATA_DIR's speakers and labels."""
    from ..interop._toolkits import import_features

    report = import_features(listing, data_dir, out, fmt=fmt, sample_rate=sample_rate, overwrite=overwrite)
    click.echo(f"{out}: {report.n_utterances} utterances imported"
               + (f"; {len(report.missing)} of {data_dir} had no features (listed by 'acoustic-gmm info')"
                  if report.missing else ""))


@click.command("export-model")
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", help="which model of a model file that holds several")
@click.option("--format", "fmt", type=FORMATS, required=True)
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="kaldi: DiagGmm text (then gmm-global-copy to binary); htk: an MMF")
@errors_to_messages
@writes(("out",), ("model_path",))
def export_model(model_path, name, fmt, out):
    """Write a diagonal GMM in Kaldi's DiagGmm text format or as an HTK MMF (one emitting state)."""
    from ..interop._toolkits import export_model as run

    run(model_path, out, fmt=fmt, name=name)
    click.echo(f"{out}: {fmt} model")


@click.command("import-model")
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=FORMATS, required=True)
@click.option("--name", help="htk: which ~h model of the MMF; the name in the model file written")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="model file to write (HDF5)")
@errors_to_messages
@writes(("out",), ("path",))
def import_model(path, fmt, name, out):
    """Make an acoustic_gmm model file of a Kaldi DiagGmm (text) or a GMM state of an HTK MMF."""
    from ..interop._toolkits import import_model as run

    model = run(path, out, fmt=fmt, name=name)
    click.echo(f"{out}: {model.n_components} components x {model.n_features} features")
