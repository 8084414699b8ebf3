"""``platform.features``: the feature store (docs/features.md).

Definitions (entities, feature views, on-demand features, feature services) are applied
as a whole set and versioned by content hash; a feature service's version is the digest
of everything it reads. Training sets are point-in-time joins pinned at data commits;
materialization fills the online store the daemon owns; lookups answer a status per
value (present, expired, missing) by the same TTL rule as the training sets.

Local-only seams (not on the Protocol): ``historical`` (an Arrow table in, an Arrow
table out, for scripts in the daemon's process and the skew check), ``plan`` (the
resolved definitions), ``check_deployment`` (the deployments' placement hook) and
``close``.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from mlops_lite.features.definitions import Definitions
    from mlops_lite.features.records import (
        ApplyResult,
        FeatureDefinitionRecord,
        FeatureOverrideRecord,
        FeatureServiceRecord,
        MaterializationRecord,
        OnlineFeatures,
        SkewReport,
        TrainingSetRecord,
    )
    from mlops_lite.records import Prediction


class FeaturesAPI(Protocol):
    def apply(self, definitions: Definitions | Mapping[str, Any] | str | Path, *, ref: str = "main",
              dry_run: bool = False) -> ApplyResult:
        """Validate the whole set against its sources at ``ref`` and make it current."""

    def list(self, kind: str | None = None) -> builtins.list[FeatureDefinitionRecord]: ...

    def history(self, kind: str, name: str) -> builtins.list[FeatureDefinitionRecord]: ...

    def service(self, name: str, version: str | None = None) -> FeatureServiceRecord: ...

    def versions(self, name: str) -> builtins.list[str]: ...

    def services(self) -> builtins.list[str]: ...

    def training_set(self, service: str, *, repository: str | None = None, path: str | None = None,
                     ref: str = "main", timestamp_field: str = "event_timestamp") -> TrainingSetRecord:
        """A stored point-in-time training set of the entity rows ``path`` of ``repository``."""

    def get_training_set(self, id: str) -> TrainingSetRecord: ...

    def training_sets(self, service: str | None = None) -> builtins.list[TrainingSetRecord]: ...

    def training_set_table(self, id: str) -> Any:
        """The stored training set's rows (a pyarrow Table)."""

    def materialize(self, views: Sequence[str] | None = None, *, ref: str = "main", mode: str = "incremental",
                    as_of: datetime | str | None = None) -> builtins.list[MaterializationRecord]: ...

    def materializations(self, view: str | None = None, *, limit: int = 50) -> builtins.list[MaterializationRecord]: ...

    def online(self, service: str, entities: Sequence[Mapping[str, Any]], *, at: datetime | str | None = None,
               log: bool = True, deployment: str | None = None, version: str | None = None) -> OnlineFeatures: ...

    def predict(self, deployment: str, entities: Sequence[Mapping[str, Any]], *, key: str | None = None) -> Prediction:
        """Entity rows in, the deployment's answers out: features looked up online."""

    def allow(self, deployment: str, *, reason: str) -> FeatureOverrideRecord: ...

    def check_skew(self, service: str, *, sample: int = 200, since: datetime | str | None = None,
                   alert: bool = True) -> SkewReport: ...
