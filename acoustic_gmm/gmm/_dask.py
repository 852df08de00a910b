"""EM over a Dask cluster: statistics accumulated on archive shards, summed by a tree reduction.

:class:`acoustic_gmm.speaker.DaskStats` does the same for an i-vector extractor's E-steps.

Sufficient statistics add (:class:`acoustic_gmm.gmm.Stats`), so an E-step splits over any number of
machines: each Dask task opens the feature archive, accumulates the statistics of its shard of
utterances under the current model, and the results are summed pairwise (a tree, so no worker
or client receives more than two at a time); the M-step runs on the client.  The archive must be
readable at the same path on every worker (a shared file system).

Examples
--------
::

    from dask.distributed import Client
    from acoustic_gmm import GMM
    from acoustic_gmm.gmm import DaskFrames

    client = Client("tcp://scheduler:8786")          # or Client(LocalCluster()) on one machine
    ubm = GMM(1024).fit(DaskFrames("feats.h5", client))
"""

from __future__ import annotations

import operator
from pathlib import Path

import numpy as np

from ..errors import ParameterError
from ..storage._archive import FeatureArchive
from ._stats import accumulate

__all__ = ["DaskFrames"]


def _shard_stats(path: str, ids: list, model, chunk: int, view=None):
    with FeatureArchive(path, view=view) as fa:
        return accumulate(model, fa.subset(ids), chunk=chunk, threads=1)


class DaskFrames:
    """A feature archive whose E-steps run as Dask tasks, one per shard of utterances.

    Pass it to :meth:`acoustic_gmm.GMM.fit` in place of the frames.  Everything EM does besides
    the E-step (global statistics, initial sampling) streams the archive on the client.
    """

    def __init__(self, path, client=None, n_shards: int | None = None, ids=None, view=None):
        if client is None:
            try:
                from dask.distributed import default_client
            except ImportError:
                raise ParameterError("distributed EM needs Dask: pip install 'acoustic-gmm[distributed]'") from None
            client = default_client()
        self.path, self.client = str(Path(path).resolve()), client
        self.archive = FeatureArchive(self.path, view=view)  # a raw archive's frames as ``view`` reads them
        self.view = self.archive.config
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        n_shards = n_shards or 4 * n_workers
        self.ids = list(self.archive.ids if ids is None else ids)
        self.shards = [list(s) for s in np.array_split(np.array(self.ids, dtype=object), n_shards) if len(s)]

    # what em needs of a frame source: size, streaming, sampling
    @property
    def n_frames_total(self) -> int:
        return sum(self.archive.n_frames[u] for u in self.ids)

    @property
    def n_features(self) -> int:
        return self.archive.n_features

    def frames(self):
        return self.archive.frames(self.ids)

    def iter_chunks(self, size):
        return self.archive.iter_chunks(size, self.ids)

    def rows(self, index):
        return self.archive.rows(index, self.ids)

    def accumulate(self, model, chunk: int):
        """The E-step of ``model`` over every shard, on the cluster; statistics summed as a tree."""
        # hash=False: a new key every time; the same model scattered again (hashed to the same key) while the last
        # pass's copy is being released was lost in replication and cancelled the pass
        remote_model = self.client.scatter(model, broadcast=True, hash=False)
        parts = [self.client.submit(_shard_stats, self.path, ids, remote_model, chunk, self.view, pure=False)
                 for ids in self.shards]
        while len(parts) > 1:
            paired = [self.client.submit(operator.add, a, b) for a, b in zip(parts[::2], parts[1::2])]
            parts = paired + ([parts[-1]] if len(parts) % 2 else [])
        return parts[0].result()

    def close(self) -> None:
        self.archive.close()
