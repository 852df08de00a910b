"""Files on disk: HDF5 basics, feature archives, data directories and corpus extraction.

Imports :mod:`acoustic_gmm.features` and :mod:`acoustic_gmm.errors` only.  ``_outputs`` is the one output policy
(atomic writes, locks, overwrite rules) every writer of the package uses; ``_probe`` reads a damaged HDF5 file's
metadata in a child process first; ``_hdf5`` opens and checks HDF5 files and reads their values with limits;
``_archive`` is the feature archive (:class:`FeatureArchive`); ``_datadir`` Kaldi-style data directories and id
lists; ``_parallel`` worker processes and Dask clients; ``_corpus`` extracts a data directory into an archive.
"""

import lazy_loader

# the public names, each from the module that defines it; imported on first use, so that importing one
# name does not import the whole layer (the CLI starts in a fraction of a second)
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "_archive": ['ArchiveSubset', 'FeatureArchive', 'convert_archive', 'opened', 'write_features'],
    "_corpus": ['BATCH_SIZE', 'ExtractionReport', 'describe_problems', 'extract_corpus', 'extract_files', 'extract_recording', 'plan_batches', 'read_shard', 'write_shard'],
    "_datadir": ['DataDir', 'read_data_dir', 'read_htk_lab', 'read_ids', 'read_phn', 'read_spk2utt', 'write_data_dir'],
    "_hdf5": ['FEATURES_VERSION', 'FORMAT_VERSION', 'atomic_h5', 'file_kind', 'load_arrays', 'open_h5', 'write_json', 'write_text'],
    "_outputs": ['atomic_path', 'check_outputs', 'locked', 'save_png'],
    "_parallel": ['connect', 'parallel_map'],
    "_probe": ['PROBE_SECONDS', 'probe'],
})
