"""A deployment's training recipe, read back from the lineage of the version it serves.

A retrain learns what the serving version learned, from newer data: the same target,
features, sensitive attribute, algorithm and parameters, from the same folder of the
same data repository. All of it was recorded when that version was trained: its run's
tags name the repository and the path it read, its run's params the algorithm, split,
seed, sensitive attribute and the estimator's params, and its signature the target and
the features by kind (the columns left out, PII and protected attributes, are those it
does not list). So the flows name no dataset: they take a deployment and read this.

A version trained through a feature service (its run's tags name ``feature_service``,
``training_set`` and ``entity_timestamp``; ``path`` is then its entity rows) is retrained
through the same service: a new point-in-time training set is built at the newer commit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from mlops_lite.errors import NotFound
from mlops_lite.records import DeploymentLineage
from mlops_lite.training.classifier import TrainingSpec

_GLOB = frozenset("*?[")


@dataclass(frozen=True)
class TrainingRecipe:
    """How the version a deployment serves was trained (see the module doc)."""

    deployment: str
    model: str
    repository: str
    path: str  # what its run read: a file, or a pattern of files
    data_commit: str
    spec: TrainingSpec
    # Trained through a feature service: the service, the training set it trained from, and
    # the entity rows' time column (the run's tags); None for a model trained on a table.
    feature_service: str | None = None
    training_set: str | None = None
    entity_timestamp: str | None = None

    @classmethod
    def of(cls, lineage: DeploymentLineage) -> TrainingRecipe:
        """The recipe of the primary slot of ``lineage`` (``platform.deployments.lineage``).
        NotFound, naming the broken links, when a link it needs cannot be followed."""
        slot = next(s for s in lineage.slots if s.slot == "primary")
        path = slot.run.tags.get("path") if slot.run is not None else None
        if slot.registered is None or slot.run is None or not slot.data_repository or not slot.data_commits \
                or not path:
            broken = [*slot.missing, *([f"training run {slot.run.id} names no path it read"]
                                       if slot.run is not None and not path else [])]
            raise NotFound(f"the training recipe of deployment {lineage.deployment!r} cannot be read from "
                           f"{slot.model}@{slot.version}: {'; '.join(broken) or 'its lineage is incomplete'}")
        tags = slot.run.tags
        service = tags.get("feature_service") or None
        return cls(deployment=lineage.deployment, model=slot.model, repository=slot.data_repository,
                   path=str(path), data_commit=slot.data_commits[0],
                   spec=TrainingSpec.recorded(slot.registered.signature, slot.run.params),
                   feature_service=service, training_set=(tags.get("training_set") or None) if service else None,
                   entity_timestamp=(tags.get("entity_timestamp") or "event_timestamp") if service else None)

    def train(self, training: Any, ref: str, *, run_name: str | None = None) -> Any:
        """Train this recipe on ``pattern`` at ``ref`` through ``training`` (``platform.training``):
        through its feature service (a new training set at ``ref``) when it names one."""
        name = run_name or f"retrain-{self.spec.algorithm}"
        if self.feature_service is not None:
            return training.train_features(self.feature_service, self.repository, ref, self.pattern, self.spec,
                                           timestamp_field=self.entity_timestamp or "event_timestamp",
                                           run_name=name)
        return training.train(self.repository, ref, self.pattern, self.spec, run_name=name)

    @property
    def pattern(self) -> str:
        """What a retrain reads: the recorded path when it is a pattern already, else every
        file of its folder with its suffix. Fresh data lands beside the first file
        (``fresh_path``), so the dataset is the folder."""
        if _GLOB & set(self.path):
            return self.path
        return self._in_folder(f"*{PurePosixPath(self.path).suffix}")

    def fresh_path(self, moment: datetime) -> str:
        """Where a fresh file committed at ``moment`` goes: in the folder, in its format."""
        return self._in_folder(f"fresh-{moment:%Y%m%d-%H%M%S}{PurePosixPath(self.path).suffix}")

    def _in_folder(self, name: str) -> str:
        folder = PurePosixPath(self.path).parent
        return name if str(folder) == "." else str(folder / name)

    def but(self, *, algorithm: str | None = None, params: dict[str, Any] | None = None) -> TrainingRecipe:
        """The recipe with another algorithm (the recorded params belong to the recorded
        one, so they are left behind) and/or ``params`` over the estimator's."""
        spec = self.spec
        if algorithm is not None and algorithm != spec.algorithm:
            spec = replace(spec, algorithm=algorithm, params={})
        if params:
            spec = replace(spec, params={**spec.params, **params})
        return replace(self, spec=spec)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``from_dict`` reads it back), as a flow passes it to its tasks."""
        return {"deployment": self.deployment, "model": self.model, "repository": self.repository,
                "path": self.path, "data_commit": self.data_commit, "spec": self.spec.as_dict(),
                "feature_service": self.feature_service, "training_set": self.training_set,
                "entity_timestamp": self.entity_timestamp}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingRecipe:
        return cls(deployment=data["deployment"], model=data["model"], repository=data["repository"],
                   path=data["path"], data_commit=data["data_commit"], spec=TrainingSpec.from_dict(data["spec"]),
                   feature_service=data.get("feature_service"), training_set=data.get("training_set"),
                   entity_timestamp=data.get("entity_timestamp"))
