"""Commands over features: ``features`` (a data directory into an archive), ``convert`` (an old archive
into the current format), ``info`` (what any file of ours holds).
The front end's options are generated from :class:`~acoustic_gmm.features.MfccConfig`'s fields.
"""

from __future__ import annotations

import json
import sys

import click

from ._main import config_options, errors_to_messages, message, writes

__all__ = ['features', 'convert', 'info']


# --------------------------------------------------------------------------- features

@click.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="feature archive to write (HDF5)")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="worker processes [default: all cores]")
@click.option("--strict", is_flag=True, help="stop at the first bad utterance instead of skipping it")
@click.option("--overwrite", is_flag=True, help="replace OUT if it exists (only once the new one is complete)")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="MfccConfig as JSON (e.g. the 'config' of 'acoustic-gmm info --json'); options given here override it")
@click.option("--htk-config", type=click.Path(exists=True, dir_okay=False),
              help="an HCopy configuration file (TARGETKIND MFCC or FBANK ...): HTK's front end, HTK's numbers")
@click.option("--scheduler", "client", help="Dask scheduler address (tcp://host:8786): batches run on its workers, which "
                                  "must see the audio and OUT's folder at the same paths")
@config_options
@errors_to_messages
def features(data_dir, out, jobs, strict, overwrite, config_file, htk_config, client, **options):
    """Extract MFCC features for every utterance of a Kaldi-style DATA_DIR.

    DATA_DIR holds wav.scp, and optionally utt2spk, utt2label and segments. Work goes to
    OUT.partial/ first: if interrupted, run the same command again to continue.
    """
    from ..features._config import MfccConfig
    from ..storage._corpus import extract_corpus

    if htk_config and config_file:
        raise click.ClickException("--htk-config and --config both set the front end: give one")
    config = (MfccConfig.from_htk_config(htk_config, **options) if htk_config
              else MfccConfig.from_options(config_file, **options))
    try:
        report = extract_corpus(data_dir, out, config=config, jobs=jobs, strict=strict, overwrite=overwrite,
                                client=client)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: finished batches are kept in {out}.partial/; run the same command "
                   f"again to continue", err=True)
        sys.exit(130)
    click.echo(message(report.summary()))


@click.command()
@click.argument("feats", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="the archive to write")
@errors_to_messages
@writes(("out",), ("feats",))
def convert(feats, out):
    """Rewrite a feature archive of an earlier format (1: one dataset per utterance) in the current one (2:
    frames stored contiguously, read and streamed several times faster)."""
    from ..storage._archive_write import convert_archive

    n = convert_archive(feats, out)
    click.echo(f"{out}: {n} utterances, feature archive format 2")


# --------------------------------------------------------------------------- info

@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print the facts as one JSON object")
@errors_to_messages
def info(path, as_json):
    """Say what an acoustic_gmm HDF5 file holds (feature archive, models or speakers)."""
    from ..interop._describe import describe, format_description

    facts = describe(path)
    click.echo(json.dumps(facts, indent=1) if as_json else format_description(facts))
