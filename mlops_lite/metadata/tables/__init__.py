"""SQLModel tables: the storage shape, one module per domain. Keys are digests, UUIDs or names.

DuckDB (the embedded default) rejects SERIAL keys and most foreign-key tricks, so
no table here has an auto-increment key or a foreign key; the services keep
referential rules. Datetimes are timezone-aware UTC (``mlops_lite.clock.utcnow``).

A table's name and columns are what a home stores: moving a class between modules
changes nothing stored. A newer release may add a table or a nullable column (the
store's additive upgrade adds them to an older database), never rename one.

Every table is importable from here as well as from its domain's module; a domain's
constants (states, kinds) from its module.
"""

from mlops_lite.metadata.tables.alerts import AlertRow, AlertSilenceRow
from mlops_lite.metadata.tables.columns import core_table
from mlops_lite.metadata.tables.data import (
    DataBranch,
    DataCommit,
    DataRepository,
    DataStaged,
    DataTag,
    DataTombstone,
)
from mlops_lite.metadata.tables.deployments import Deployment, DeploymentRevision
from mlops_lite.metadata.tables.features import (
    FeatureDefinitionRow,
    FeatureMaterializationRow,
    FeatureOnlineRow,
    FeatureOverrideRow,
    FeatureServedRow,
    FeatureServiceVersionRow,
    FeatureTrainingSetRow,
)
from mlops_lite.metadata.tables.policy import ApprovalRequestRow, ApprovalVoteRow, PolicyDecisionRow
from mlops_lite.metadata.tables.privacy import PrivacyCommitMap, PrivacyErasure, PrivacyFlag
from mlops_lite.metadata.tables.registry import AliasEvent, Model, ModelAlias, ModelCard, ModelVersion
from mlops_lite.metadata.tables.security import ApiToken, AuditEvent
from mlops_lite.metadata.tables.tracking import Experiment, Metric, Param, Run

__all__ = [
    "AlertRow",
    "AlertSilenceRow",
    "AliasEvent",
    "ApiToken",
    "ApprovalRequestRow",
    "ApprovalVoteRow",
    "AuditEvent",
    "DataBranch",
    "DataCommit",
    "DataRepository",
    "DataStaged",
    "DataTag",
    "DataTombstone",
    "Deployment",
    "DeploymentRevision",
    "Experiment",
    "FeatureDefinitionRow",
    "FeatureMaterializationRow",
    "FeatureOnlineRow",
    "FeatureOverrideRow",
    "FeatureServedRow",
    "FeatureServiceVersionRow",
    "FeatureTrainingSetRow",
    "Metric",
    "Model",
    "ModelAlias",
    "ModelCard",
    "ModelVersion",
    "Param",
    "PolicyDecisionRow",
    "PrivacyCommitMap",
    "PrivacyErasure",
    "PrivacyFlag",
    "Run",
    "core_table",
]
