from pathlib import Path

import pytest
from pydantic import ValidationError

from mlops_lite.config import CONFIG_FILE_NAME, load_settings


def test_defaults_live_under_the_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_LITE_DATABASE_URL", raising=False)  # set by the --postgres run
    settings = load_settings(home=tmp_path)
    assert settings.home == tmp_path.resolve()
    assert settings.database_path == tmp_path.resolve() / "metadata.duckdb"
    assert settings.sql_url == f"duckdb:///{tmp_path.resolve()}/metadata.duckdb"
    assert settings.host == "127.0.0.1" and settings.port == 8000


def test_precedence_kwargs_over_env_over_toml_over_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / CONFIG_FILE_NAME).write_text('port = 9100\nregion = "eu"\nmin_roc_auc = 0.7\n')
    monkeypatch.setenv("MLOPS_LITE_HOME", str(tmp_path))
    assert load_settings().port == 9100
    assert load_settings().region == "eu"
    monkeypatch.setenv("MLOPS_LITE_PORT", "9200")
    assert load_settings().port == 9200
    assert load_settings(port=9300).port == 9300
    assert load_settings().min_roc_auc == 0.7
    assert load_settings().max_batch_size == 10_000


def test_invalid_values_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="execution_provider"):
        load_settings(home=tmp_path, execution_provider="tpu")
    with pytest.raises(ValidationError, match="port"):
        load_settings(home=tmp_path, port=70000)


def test_initialised_means_the_duckdb_file_or_with_a_database_url_the_token(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_LITE_DATABASE_URL", raising=False)
    local = load_settings(home=tmp_path / "a")
    assert not local.initialised
    local.home.mkdir(parents=True)
    local.database_path.write_bytes(b"")
    assert local.initialised
    remote_db = load_settings(home=tmp_path / "b", database_url="postgresql+psycopg://u@127.0.0.1/db")
    assert not remote_db.initialised
    remote_db.home.mkdir(parents=True)
    remote_db.token_file.write_text("t")
    assert remote_db.initialised and remote_db.sql_url.startswith("postgresql")


def test_cors_origins_are_off_by_default_and_come_from_toml_or_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_LITE_CORS_ORIGINS", raising=False)
    assert load_settings(home=tmp_path).cors_origins == []
    (tmp_path / CONFIG_FILE_NAME).write_text('cors_origins = ["https://ops.example.com"]\n')
    assert load_settings(home=tmp_path).cors_origins == ["https://ops.example.com"]
    monkeypatch.setenv("MLOPS_LITE_CORS_ORIGINS", "https://a.example, http://localhost:3000")
    assert load_settings(home=tmp_path).cors_origins == ["https://a.example", "http://localhost:3000"]
    monkeypatch.setenv("MLOPS_LITE_CORS_ORIGINS", '["https://b.example"]')
    assert load_settings(home=tmp_path).cors_origins == ["https://b.example"]
    monkeypatch.setenv("MLOPS_LITE_CORS_ORIGINS", "https://b.example/app")
    with pytest.raises(ValidationError, match="cors_origins"):
        load_settings(home=tmp_path)
