"""Metadata: SQLModel tables and the SQL store (DuckDB by default)."""

from mlops_lite.metadata.store import MetadataStore

__all__ = ["MetadataStore"]
