from __future__ import annotations

from pathlib import Path

import pytest

from civicsoc.config import load_settings
from civicsoc.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_use_the_embedded_store_under_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(environ={"CIVICSOC_DATA_DIR": str(tmp_path)})
    assert settings.store_url == f"sqlite:///{tmp_path}/civicsoc.db"
    assert settings.store.retention_days == 90


def test_environment_overrides_the_file_and_flags_override_both(tmp_path: Path) -> None:
    config = write(tmp_path / "c.yaml",
                   "store:\n  url: http://es.example:9200\n  retention_days: 30\napi:\n  port: 9000\n")
    settings = load_settings(config, environ={"CIVICSOC_STORE": "https://other:9200", "CIVICSOC_API__PORT": "9100"})
    assert settings.store.url == "https://other:9200"
    assert settings.store.retention_days == 30
    assert settings.api.port == 9100
    flagged = load_settings(config, environ={"CIVICSOC_STORE": "https://other:9200"},
                            overrides={"store.url": "sqlite:///x.db"})
    assert flagged.store.url == "sqlite:///x.db"


def test_config_file_from_environment(tmp_path: Path) -> None:
    config = write(tmp_path / "c.yaml", "default_tenant: city-hall\n")
    assert load_settings(environ={"CIVICSOC_CONFIG": str(config)}).default_tenant == "city-hall"


def test_a_bad_value_names_the_key_its_origin_and_what_was_expected(tmp_path: Path) -> None:
    config = write(tmp_path / "c.yaml", "store:\n  retention_days: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={"CIVICSOC_API__PORT": "eighty"})
    problems = "\n".join(caught.value.problems)
    assert f"store.retention_days (from file {config}): Input should be greater than or equal to 1, got 0" in problems
    assert "api.port (from env CIVICSOC_API__PORT): Input should be a valid integer" in problems


def test_unknown_keys_are_errors_not_silently_ignored(tmp_path: Path) -> None:
    config = write(tmp_path / "c.yaml", "store:\n  urll: sqlite:///x.db\n")
    with pytest.raises(ConfigError, match=r"store\.urll \(from file .*\): unknown key"):
        load_settings(config, environ={})


def test_bad_store_url_scheme(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"store\.url \(from env CIVICSOC_STORE\).*sqlite://, http:// or https://"):
        load_settings(environ={"CIVICSOC_STORE": "mysql://db"})


def test_yaml_syntax_errors_point_at_the_line(tmp_path: Path) -> None:
    config = write(tmp_path / "c.yaml", "store:\n  url: [unclosed\napi: {}\n")
    with pytest.raises(ConfigError, match=rf"{config}:3:\d+: not valid YAML"):
        load_settings(config, environ={})


def test_secrets_are_never_echoed(tmp_path: Path) -> None:
    config = write(tmp_path / "c.yaml", "store:\n  password: [hunter2]\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert "store.password" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(tmp_path / "absent.yaml", environ={})
