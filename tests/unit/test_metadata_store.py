from pathlib import Path

import duckdb
from sqlmodel import SQLModel

from mlops_lite.metadata import MetadataStore


def test_a_column_added_by_a_newer_release_is_added_to_an_old_database(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as old:
        old.execute("create table api_tokens (id varchar primary key, name varchar not null, role varchar not null,"
                    " token_hash varchar not null, created_at timestamptz not null, revoked boolean not null)")
        old.execute("insert into api_tokens values ('t1', 'admin', 'admin', 'h', now(), false)")
    store = MetadataStore(f"duckdb:///{path}")
    store.close()
    with duckdb.connect(str(path)) as upgraded:
        columns = [row[0] for row in upgraded.execute("describe api_tokens").fetchall()]
        assert "access_key_id" in columns
        assert upgraded.execute("select name from api_tokens").fetchall() == [("admin",)]


def test_a_table_added_by_a_newer_release_is_created_in_an_old_database(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    MetadataStore(f"duckdb:///{path}").close()
    expected = {table.name for table in SQLModel.metadata.sorted_tables}
    with duckdb.connect(str(path)) as old:
        old.execute("drop table alert_silences")
    MetadataStore(f"duckdb:///{path}").close()
    with duckdb.connect(str(path)) as upgraded:
        tables = {row[0] for row in upgraded.execute("select table_name from information_schema.tables").fetchall()}
        assert expected <= tables
        assert upgraded.execute("select count(*) from alert_silences").fetchall() == [(0,)]
