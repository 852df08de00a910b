"""The ``acoustic-gmm`` command line: thin, it parses, calls one or two library functions and prints.

The top layer: it may import every layer below, and nothing imports it.  Every workflow, default and rule is a
library function's (:mod:`acoustic_gmm.storage`, :mod:`acoustic_gmm.classes`, :mod:`acoustic_gmm.speaker`,
:mod:`acoustic_gmm.interop`), so a Python user can do anything a command does with the same arguments; the
commands map flags to parameters and the library's messages back (``overwrite=True`` is ``--overwrite``).
Grouped as Kaldi groups its binaries: ``_features``, ``_classes``, ``_speaker``, ``_interop``, on the group and
shared options of ``_main``, whose table :data:`~acoustic_gmm.cli._main.COMMANDS` says which module holds each
command: a command imports its own module only.  Heavy modules (h5py, librosa, scipy, numpy's users) are imported
inside the commands that need them, so ``acoustic-gmm --help`` starts fast.
"""

from ._main import main

__all__ = ["main"]
