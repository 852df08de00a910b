"""Audio to feature frames: the lowest layer above :mod:`acoustic_gmm.errors`, which is all it imports.

Reading audio (``_audio``), the front end's configuration (``_config``: :class:`MfccConfig`), filter banks and
DCTs (``_filters``), the block-wise MFCC front end and deltas (``_frontend``), VAD, CMVN and feature warping
(``_normalise``), the analysis functions that run them over a file, a segment or an array (``_analysis``), and
HTK's front end: its configuration files and parameter kinds (``_htk_config``) and its signal processing
(``_htk_dsp``).  Nothing here knows of archives, models or files other than audio.
"""

import lazy_loader

# the public names, each from the module that defines it; imported on first use, so that importing one
# name does not import the whole layer (the CLI starts in a fraction of a second)
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "_analysis": ['Analysis', 'analyse', 'analyse_file', 'extract', 'extract_file', 'extract_segments', 'segment_frames', 'utterance_frames'],
    "_audio": ['AudioFile', 'check_signal', 'read_audio'],
    "_config": ['MAX_CMVN_WINDOW', 'MfccConfig', 'config_differences'],
    "_filters": ['dct_matrix', 'mel_filters', 'window_function'],
    "_frontend": ['FRAME_BLOCK', 'add_deltas', 'frontend', 'frontend_arrays', 'mfcc_frames', 'n_frames', 'preload_frontend'],
    "_htk_config": ['BASE_KINDS', 'HtkSettings', 'LZERO', 'MINLARG', 'QUALIFIERS', 'htk_settings', 'kind_name', 'parse_htk_config', 'parse_kind'],
    "_htk_dsp": ['fft_size', 'frame_geometry', 'hamming_window', 'htk_dct_matrix', 'log_energy', 'mel_filterbank', 'normalise_log_energy', 'preemphasise', 'regression', 'sum_of_squares', 'zero_mean_frames'],
    "_normalise": ['kaldi_energy_offset', 'normalise', 'speaker_cmvn', 'vad_mask'],
})
