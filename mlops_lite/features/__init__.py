"""The feature store: entities, feature views with TTLs, on-demand features and feature
services (definitions versioned by content hash), point-in-time training sets pinned at a
data commit, an online store owned by the daemon, entity-keyed predictions and the skew
check between what was served and what the offline join says (docs/features.md)."""

from mlops_lite.features.definitions import (
    DTYPES,
    Definitions,
    Entity,
    Feature,
    FeatureService,
    FeatureView,
    OnDemandFeatureView,
    ServicePlan,
    Source,
)
from mlops_lite.features.facet import Features
from mlops_lite.features.online import EXPIRED, MISSING, PRESENT
from mlops_lite.features.records import (
    ApplyChange,
    ApplyResult,
    FeatureDefinitionRecord,
    FeatureOverrideRecord,
    FeatureServiceRecord,
    MaterializationRecord,
    OnlineFeatures,
    SkewReport,
    TrainingSetRecord,
)

__all__ = ["DTYPES", "EXPIRED", "MISSING", "PRESENT", "ApplyChange", "ApplyResult", "Definitions", "Entity", "Feature",
           "FeatureDefinitionRecord", "FeatureOverrideRecord", "FeatureService", "FeatureServiceRecord", "FeatureView",
           "Features", "MaterializationRecord", "OnDemandFeatureView", "OnlineFeatures", "ServicePlan", "SkewReport",
           "Source", "TrainingSetRecord"]
