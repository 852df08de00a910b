"""The ``acoustic-gmm`` command line: thin, it parses, calls the library and prints.

Heavy modules (h5py, librosa, scipy) are imported inside the commands that need them,
so ``acoustic-gmm --help`` starts fast.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
from collections import Counter
from pathlib import Path

import click

from . import __version__
from .errors import AcousticGMMError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="acoustic-gmm")
def main() -> None:
    """Gaussian-mixture acoustic modelling of speech."""


def _fail(exc: Exception) -> typing.NoReturn:
    raise click.ClickException(str(exc))


# --------------------------------------------------------------------------- features

def _config_options(func):
    """One option per MfccConfig field (``n_mfcc`` -> ``--n-mfcc``), all defaulting to 'not given'."""
    from .features import MfccConfig  # light: numpy and scipy.ndimage only at parse time

    for f in reversed(dataclasses.fields(MfccConfig)):
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata['help']} [default: {f.default}]"
        if f.type in ("bool", bool):
            func = click.option(f"{flag}/--no-{f.name.replace('_', '-')}", f.name, default=None, help=help_text)(func)
            continue
        choices = f.metadata.get("choices")
        if choices:
            kind = click.Choice([str(c) for c in choices])
        else:
            kind = int if "int" in str(f.type) else float if "float" in str(f.type) else str
        func = click.option(flag, f.name, type=kind, default=None, help=help_text)(func)
    return func


def _make_config(config_file, options: dict):
    from .features import MfccConfig

    values = {}
    if config_file:
        try:
            values = MfccConfig.from_json(Path(config_file).read_text()).to_dict()
        except AcousticGMMError as exc:
            _fail(f"{config_file}: {exc}")
    for name, value in options.items():
        if value is not None:
            values[name] = int(value) if name == "deltas" else value
    return MfccConfig.from_dict(values)


@main.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="feature archive to write (HDF5)")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="worker processes [default: all cores]")
@click.option("--strict", is_flag=True, help="stop at the first bad utterance instead of skipping it")
@click.option("--overwrite", is_flag=True, help="replace OUT if it exists (only once the new one is complete)")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="MfccConfig as JSON (e.g. the 'config' of 'acoustic-gmm info --json'); options given here override it")
@_config_options
def features(data_dir, out, jobs, strict, overwrite, config_file, **options):
    """Extract MFCC features for every utterance of a Kaldi-style DATA_DIR.

    DATA_DIR holds wav.scp, and optionally utt2spk, utt2label and segments. Work goes to
    OUT.partial/ first: if interrupted, run the same command again to continue.
    """
    from .corpus import extract_corpus

    try:
        config = _make_config(config_file, options)
        report = extract_corpus(data_dir, out, config, jobs=jobs, strict=strict, overwrite=overwrite)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: finished batches are kept in {out}.partial/; run the same command "
                   f"again to continue", err=True)
        sys.exit(130)
    except AcousticGMMError as exc:
        _fail(exc)
    click.echo(report.summary())


# --------------------------------------------------------------------------- info

def _counts(counts: dict, limit: int = 12) -> str:
    shown = ", ".join(f"{k} ({n})" for k, n in sorted(counts.items())[:limit])
    return f"{len(counts)}: {shown}" + (", ..." if len(counts) > limit else "")


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print the facts as one JSON object")
def info(path, as_json):
    """Say what an acoustic_gmm HDF5 file holds (feature archive or models)."""
    from .archive import FeatureArchive, file_kind, load_models

    try:
        kind = file_kind(path)
        if kind == "features":
            with FeatureArchive(path) as fa:
                facts = {"path": str(path), "content": "features", "utterances": len(fa),
                         "frames": sum(fa.n_frames.values()), "n_features": fa.n_features,
                         "sample_rate": fa.sample_rate, "config": fa.config.to_dict(),
                         "labels": dict(Counter(v for v in fa.labels.values() if v)),
                         "speakers": dict(Counter(v for v in fa.speakers.values() if v)),
                         "skipped": fa.skipped, "data_dir": fa.data_dir}
        else:
            models, meta = load_models(path)
            facts = {"path": str(path), "content": "models", "metadata": meta,
                     "models": {name: {"n_components": m.n_components, "n_features": m.n_features,
                                       "covariance_type": m.covariance_type} for name, m in models.items()}}
    except AcousticGMMError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(facts, indent=1))
        return
    click.echo(f"{path}: {facts['content']}")
    if kind == "features":
        click.echo(f"  utterances  {facts['utterances']}  ({facts['frames']:,} frames x {facts['n_features']} "
                   f"features, {facts['sample_rate']} Hz)")
        if facts["labels"]:
            click.echo(f"  labels      {_counts(facts['labels'])}")
        if facts["speakers"]:
            click.echo(f"  speakers    {_counts(facts['speakers'])}")
        click.echo(f"  skipped     {len(facts['skipped'])}"
                   + "".join(f"\n    {u}: {r}" for u, _, r in facts["skipped"][:5]))
        click.echo(f"  source      {facts['data_dir']}")
        click.echo("  config      " + " ".join(f"{k}={v}" for k, v in facts["config"].items()))
    else:
        for name, m in list(facts["models"].items())[:20]:
            click.echo(f"  {name}: {m['n_components']} components x {m['n_features']} features "
                       f"({m['covariance_type']})")
        if len(facts["models"]) > 20:
            click.echo(f"  ... {len(facts['models']) - 20} more models")
        click.echo(f"  metadata    {json.dumps(facts['metadata'])}")


if __name__ == "__main__":  # pragma: no cover
    main()
