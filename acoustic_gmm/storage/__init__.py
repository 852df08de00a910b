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
    "_archive": ['ArchiveSubset', 'FeatureArchive'],
    "_archive_write": ['convert_archive', 'write_features'],
    "_corpus": ['ExtractionReport', 'extract_corpus', 'extract_files'],
    "_datadir": ['DataDir', 'read_data_dir', 'read_htk_lab', 'read_ids', 'read_phn', 'read_spk2utt', 'write_data_dir'],
    "_hdf5": ['file_kind', 'open_h5'],
    "_outputs": ['atomic_path', 'check_free_space', 'check_outputs', 'locked', 'writing'],
})
