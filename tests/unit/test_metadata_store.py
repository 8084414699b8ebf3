from pathlib import Path

import duckdb

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
