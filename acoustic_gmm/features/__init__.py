"""Audio to feature frames: the lowest layer above :mod:`acoustic_gmm.errors`, which is all it imports.

Reading audio (``_audio``), the front end's configuration (``_config``: :class:`MfccConfig`), filter banks and
DCTs (``_filters``), the block-wise MFCC front end and deltas (``_frontend``), VAD, CMVN and feature warping
(``_normalise``), the normalisation chosen when raw frames are read (``_view``), the analysis functions that run
them over a file, a segment or an array (``_analysis``), and HTK's front end: its configuration files and
parameter kinds (``_htk_config``) and its signal processing (``_htk_dsp``).  Nothing here knows of archives,
models or files other than audio.
"""

import lazy_loader

# the public names, each from the module that defines it; imported on first use, so that importing one
# name does not import the whole layer (the CLI starts in a fraction of a second)
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "_analysis": ['extract', 'extract_file', 'extract_segments', 'raw_frames', 'segment_rows'],
    "_audio": ['AudioFile', 'read_audio'],
    "_config": ['MfccConfig', 'VIEW_FIELDS', 'config_differences'],
    "_filters": ['dct_matrix', 'mel_filters', 'window_function'],
    "_frontend": ['add_deltas'],
    "_htk_config": ['HtkSettings', 'kind_name', 'parse_htk_config', 'parse_kind'],
    "_normalise": ['normalise', 'speaker_cmvn', 'vad_mask'],
    "_view": ['SLIDING', 'frame_sums', 'speaker_scale', 'view_config', 'view_frames', 'view_of'],
})
