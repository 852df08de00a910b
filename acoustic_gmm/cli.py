"""The ``acoustic-gmm`` command line: thin, it parses, calls the library and prints.

Heavy modules (h5py, librosa, scipy) are imported inside the commands that need them,
so ``acoustic-gmm --help`` starts fast.
"""

from __future__ import annotations

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="acoustic-gmm")
def main() -> None:
    """Gaussian-mixture acoustic modelling of speech.

    Subcommands arrive with the features, classification and verification stages.
    """


if __name__ == "__main__":  # pragma: no cover
    main()
