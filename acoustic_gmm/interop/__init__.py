"""Other toolkits' files: Kaldi and HTK features and models in and out, and describing our own files.

The top library layer: it may import every layer below.  ``_bridge`` turns matrices read elsewhere into a feature
archive with a data directory's speakers and labels; ``_kaldi`` Kaldi ark/scp features and DiagGmm text models;
``_htk_params`` HTK parameter files; ``_htk_mmf`` HTK MMFs; ``_toolkits`` the format-independent export and
import functions the CLI calls; ``_describe`` what ``acoustic-gmm info`` prints.
"""

import lazy_loader

# the public names, each from the module that defines it; imported on first use, so that importing one
# name does not import the whole layer (the CLI starts in a fraction of a second)
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "_bridge": ['ImportReport'],
    "_describe": ['describe', 'format_description'],
    "_htk_mmf": ['read_mmf', 'write_mmf'],
    "_htk_params": ['read_htk', 'write_htk'],
    "_kaldi": ['read_diag_gmm', 'write_diag_gmm'],
    "_toolkits": ['export_features', 'export_model', 'import_features', 'import_model'],
})
