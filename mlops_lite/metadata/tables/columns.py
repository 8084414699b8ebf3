"""Column shapes the table modules share, and the Core table of a table model."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Table
from sqlmodel import Field, SQLModel


def json_column() -> Any:
    """A JSON column holding a dict, empty by default."""
    return Field(default_factory=dict, sa_column=Column(JSON))


def core_table(model: type[SQLModel]) -> Table:
    """The Core ``Table`` of a table model, for Core statements (upserts, bulk inserts)."""
    table: Table = model.__table__  # type: ignore[attr-defined]  # SQLModel sets it on table models; its types omit it
    return table
