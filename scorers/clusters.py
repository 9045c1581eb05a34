"""An exploratory segmentation: online k-means over scaled RFM and engagement features.

The learner (it sees every labelled example's features) keeps a river ``StandardScaler`` and
``KMeans`` over :data:`CLUSTER_FEATURES` and publishes a frozen :class:`ClusterAssigner` beside
each churn model version; workers put the nearest centre's number on every scored snapshot,
so all partitions share one set of clusters. Centres are also given in the features' own units
for the ops page. Clusters are descriptive (no label trains them) and move as the population
does.

>>> clusters = CustomerClusters(n_clusters=2, seed=1)
>>> for i in range(200):
...     clusters.learn({"recency_days": 5.0 + i % 3, "log_orders": 2.0}, )
...     clusters.learn({"recency_days": 300.0 + i % 5, "log_orders": 0.7})
>>> assigner = clusters.compile()
>>> ids = assigner.assign_rows([{"recency_days": 6.0, "log_orders": 2.0},
...                             {"recency_days": 302.0, "log_orders": 0.7}])
>>> ids[0] != ids[1]
True
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from river import cluster, preprocessing

from crm_core.errors import ModelError
from scorers._special import FloatArray

__all__ = ["CLUSTER_FEATURES", "ClusterAssigner", "CustomerClusters"]

#: What the segmentation looks at (a subset of the churn features).
CLUSTER_FEATURES: tuple[str, ...] = (
    "recency_days", "log_orders", "log_monetary", "mean_gap_days", "open_rate", "click_rate",
    "days_since_engagement", "tickets_30d",
)  # fmt: skip
_FORMAT = "crm-scoring/cluster-assigner/v1"


class CustomerClusters:
    """Scaler + online k-means, learned one feature row at a time."""

    def __init__(self, n_clusters: int = 6, *, seed: int = 0, warmup: int = 200) -> None:
        if n_clusters < 2 or warmup < n_clusters:
            raise ModelError(f"need 2 <= n_clusters ({n_clusters}) <= warmup ({warmup})")
        self.n_clusters = n_clusters
        self.n_examples = 0
        self._seed = seed
        self._warmup = warmup
        self._buffer: list[dict[str, float]] | None = []
        # river's annotations are partial; both are used through their documented methods.
        self._scaler: Any = preprocessing.StandardScaler()
        self._kmeans: Any = cluster.KMeans(
            n_clusters=n_clusters, halflife=0.1, sigma=1.0, seed=seed
        )

    @property
    def ready(self) -> bool:
        """Whether the centres are seeded (past the warm-up)."""
        return self._buffer is None

    def learn(self, features: Mapping[str, float]) -> None:
        """One more customer snapshot.

        River's k-means starts from random centres; on a stream whose scale is still being
        learned one centre can take every point. So the first ``warmup`` rows only fit the
        scaler, then seed the centres by k-means++ on them, then everything is learned online.
        """
        x = {name: float(features.get(name, 0.0)) for name in CLUSTER_FEATURES}
        self._scaler.learn_one(x)
        self.n_examples += 1
        if self._buffer is not None:
            self._buffer.append(x)
            if len(self._buffer) < self._warmup:
                return
            self._seed_centres(self._buffer)
            rows, self._buffer = self._buffer, None
        else:
            rows = [x]
        for row in rows:
            self._kmeans.learn_one(self._scaled(row))

    def _scaled(self, x: dict[str, float]) -> dict[str, float]:
        scaled: dict[str, float] = self._scaler.transform_one(x)
        return scaled

    def _seed_centres(self, rows: list[dict[str, float]]) -> None:
        """k-means++ on the warm-up rows (seeded, so the same stream gives the same centres)."""
        points = np.array([[self._scaled(r)[n] for n in CLUSTER_FEATURES] for r in rows])
        rng = np.random.default_rng(self._seed)
        chosen = [points[int(rng.integers(len(points)))]]
        while len(chosen) < self.n_clusters:
            d2 = np.min([((points - c) ** 2).sum(axis=1) for c in chosen], axis=0)
            total = float(d2.sum())
            pick = int(rng.choice(len(points), p=d2 / total)) if total > 0 else len(chosen)
            chosen.append(points[pick])
        for k, centre in enumerate(chosen):
            self._kmeans.centers[k] = dict(zip(CLUSTER_FEATURES, centre.tolist(), strict=True))

    def compile(self) -> ClusterAssigner:
        """The frozen assignment function of the current centres."""
        means = np.array([self._scaler.means.get(n, 0.0) for n in CLUSTER_FEATURES], dtype=float)
        variances = [self._scaler.vars.get(n, 0.0) for n in CLUSTER_FEATURES]
        stds = np.sqrt(np.array(variances, dtype=np.float64))
        centres = np.array(
            [
                [float(self._kmeans.centers[k].get(n, 0.0)) for n in CLUSTER_FEATURES]
                for k in range(self.n_clusters)
            ],
            dtype=np.float64,
        )
        return ClusterAssigner(means, stds, centres, self.n_examples)


class ClusterAssigner:
    """Nearest centre, in the scaled space the centres were learned in (picklable)."""

    def __init__(
        self, means: FloatArray, stds: FloatArray, centres: FloatArray, n_examples: int
    ) -> None:
        self.means, self.stds, self.centres = means, stds, centres
        self.n_examples = n_examples
        self._columns: tuple[tuple[str, ...], list[int]] | None = None

    def assign_matrix(self, values: FloatArray, names: tuple[str, ...]) -> list[int]:
        """The cluster of each row of ``values`` (columns are the features ``names``)."""
        if not len(values):
            return []
        if self._columns is None or self._columns[0] != names:
            self._columns = (names, [names.index(n) for n in CLUSTER_FEATURES])
        x = values[:, self._columns[1]]
        usable = self.stds > 0
        z = np.where(usable, (x - self.means) / np.where(usable, self.stds, 1.0), 0.0)
        distances = ((z[:, None, :] - self.centres[None, :, :]) ** 2).sum(axis=2)
        return [int(k) for k in distances.argmin(axis=1)]

    def assign_rows(self, rows: Sequence[Mapping[str, float]]) -> list[int]:
        """:meth:`assign_matrix` of rows given as dicts."""
        matrix = np.array([[row.get(n, 0.0) for n in CLUSTER_FEATURES] for row in rows])
        return self.assign_matrix(matrix, CLUSTER_FEATURES)

    def centres_in_units(self) -> list[dict[str, float]]:
        """Each centre in the features' own units (for the ops page)."""
        raw = self.centres * np.where(self.stds > 0, self.stds, 1.0) + self.means
        return [
            {n: round(float(v), 3) for n, v in zip(CLUSTER_FEATURES, row, strict=True)}
            for row in raw
        ]

    def to_bytes(self) -> bytes:
        """A pickle tagged with its format."""
        return pickle.dumps((_FORMAT, self.means, self.stds, self.centres, self.n_examples))

    @classmethod
    def from_bytes(cls, data: bytes) -> ClusterAssigner:
        """Inverse of :meth:`to_bytes`; :class:`ModelError` for anything else."""
        try:
            tag, means, stds, centres, n = pickle.loads(data)
        except Exception as exc:  # pickle raises many unrelated types on garbage input
            raise ModelError(f"not a cluster assigner ({exc!r}); publish one again") from exc
        if tag != _FORMAT:
            raise ModelError(f"cluster assigner format {tag!r} is not {_FORMAT!r}; republish it")
        return cls(means, stds, centres, n)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_columns"} | {"_columns": None}
