"""Versioned data in lakeFS's words: repositories, branches, tags and commits over
Merkle trees of content-addressed objects, with protected branches and checks."""

from mlops_lite.data.checks import ColumnRule, RepositoryConfig, SchemaRule
from mlops_lite.data.lifecycle import FsckReport, GcReport
from mlops_lite.data.merge import STRATEGIES
from mlops_lite.data.reference import Branch, Reference
from mlops_lite.data.repository import Repository
from mlops_lite.data.store import DataStore
from mlops_lite.data.tables import QueryResult, TableRead
from mlops_lite.data.tree import DiffEntry

__all__ = ["STRATEGIES", "Branch", "ColumnRule", "DataStore", "DiffEntry", "FsckReport", "GcReport",
           "QueryResult", "Reference", "Repository", "RepositoryConfig", "SchemaRule", "TableRead"]
