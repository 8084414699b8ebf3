"""Versioned data: repositories, branches and commits over content-addressed objects."""

from mlops_lite.data.repository import Branch, DataStore, Reference, Repository, TableRead

__all__ = ["Branch", "DataStore", "Reference", "Repository", "TableRead"]
