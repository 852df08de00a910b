"""``python -m acoustic_gmm.cli``: the ``acoustic-gmm`` command.

The same entry point as the installed script.
"""

from . import main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    main()
