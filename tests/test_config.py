"""Settings: file, ${ENV}, environment-only, and every mistake named with file and field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crossway.api.auth import hash_key
from crossway.app import MasterKey, build_services, master_key
from crossway.config import ConfigError, load_settings

GOOD = """
master_key: ${TEST_MASTER}
providers:
  openai: {type: openai, api_key: "${TEST_OPENAI_KEY}"}
  azure-eu: {type: azure, base_url: "https://res.openai.azure.com", api_key: k,
             api_version: "2024-10-21", models: {gpt-4o: gpt4o-prod}}
  local: {type: openai-compatible, base_url: "http://127.0.0.1:11434/v1", models: [llama3]}
models:
  gpt-4o:
    deployments: [{provider: openai}, {provider: azure-eu, model: gpt4o-prod, weight: 2}]
routing: {default_model: "${TEST_DEFAULT:-gpt-4o}"}
server: {port: 9000}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "crossway.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), env or {})
    assert str(tmp_path / "crossway.yaml") in str(info.value)
    return info.value.problems


def test_a_good_file_with_interpolation(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, GOOD), {"TEST_MASTER": "sk-m", "TEST_OPENAI_KEY": "sk-o"}
    )
    assert settings.master_key is not None and settings.master_key.get_secret_value() == "sk-m"
    assert settings.providers["openai"].api_key.get_secret_value() == "sk-o"  # type: ignore[union-attr]
    assert settings.routing.default_model == "gpt-4o"
    assert settings.server.port == 9000
    assert "sk-o" not in repr(settings)


def test_environment_overrides_any_value(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, GOOD),
        {
            "TEST_MASTER": "m",
            "TEST_OPENAI_KEY": "o",
            "CROSSWAY_SERVER__PORT": "9100",
            "CROSSWAY_MASTER_KEY": "12345",
            "CROSSWAY_ROUTING__COOLDOWN_SECONDS": "5",
        },
    )
    assert settings.server.port == 9100
    assert settings.master_key.get_secret_value() == "12345"  # type: ignore[union-attr]
    assert settings.routing.cooldown_seconds == 5


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        (
            "providers:\n  openai: {type: opena, api_key: k}\n",
            "providers.openai.type",
            "unknown provider type 'opena'",
        ),
        ("providers:\n  openai: {type: openai}\n", "providers.openai.api_key", "required"),
        ("providers:\n  v: {type: openai-compatible}\n", "providers.v.base_url", "required"),
        (
            "providers:\n  v: {type: openai-compatible, base_url: ftp://x}\n",
            "providers.v.base_url",
            "http(s) URL",
        ),
        (
            "providers:\n  openai: {type: openai, api_key: k, colour: red}\n",
            "providers.openai.colour",
            "unknown field",
        ),
        (
            "models:\n  m: {deployments: [{provider: ghost}]}\n",
            "models.m.deployments[0].provider",
            "unknown provider 'ghost'",
        ),
        ("models:\n  m: {deployments: []}\n", "models.m.deployments", "at least 1"),
        (
            "providers:\n  o: {type: openai, api_key: k}\nmodels:\n  m: {deployments: "
            "[{provider: o, weight: -1}]}\n",
            "models.m.deployments.0.weight",
            "greater than 0",
        ),
        ("server: {port: 99999}\n", "server.port", "less than or equal"),
        ("server: {port: eighty}\n", "server.port", "integer"),
        (
            "providers:\n  o: {type: openai, api_key: ${NOT_SET_ANYWHERE}}\n",
            "providers.o.api_key",
            "NOT_SET_ANYWHERE is not set",
        ),
        ("nonsense: true\n", "nonsense", "unknown field"),
        ("usage_flush_seconds: 0\n", "usage_flush_seconds", "greater than 0"),
        ("usage_flush_seconds: 600\n", "usage_flush_seconds", "less than or equal to 60"),
    ],
)
def test_mistakes_name_file_field_and_reason(
    tmp_path: Path, text: str, field: str, reason: str
) -> None:
    found = problems(tmp_path, text)
    assert any(f == field and reason in r for f, r in found), found


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    found = problems(tmp_path, "providers:\n  openai: {type: openai\n")
    assert "not valid YAML" in found[0][1] and "line" in found[0][1]


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert "mapping" in problems(tmp_path, "- a\n- b\n")[0][1]


def test_no_file_means_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        None,
        {
            "OPENAI_API_KEY": "sk-1",
            "ANTHROPIC_API_KEY": "sk-2",
            "GEMINI_API_KEY": "g",
            "DEEPSEEK_API_KEY": "d",
            "MISTRAL_API_KEY": "m",
            "XAI_API_KEY": "x",
            "ARK_API_KEY": "a",
            "AZURE_OPENAI_API_KEY": "z",
            "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com",
            "OPENAI_API_VERSION": "2025-01-01-preview",
            "AZURE_OPENAI_DEPLOYMENTS": "gpt-4o=prod4o",
        },
    )
    assert settings.source == "environment"
    assert {n: p.type for n, p in settings.providers.items()} == {
        "openai": "openai",
        "anthropic": "anthropic",
        "google": "google",
        "deepseek": "deepseek",
        "mistral": "mistral",
        "x": "x",
        "volcengine": "volcengine",
        "azure": "azure",
    }
    azure = settings.providers["azure"]
    assert azure.api_version == "2025-01-01-preview" and azure.models == {"gpt-4o": "prod4o"}


def test_azure_without_endpoint_is_not_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings(None, {"AZURE_OPENAI_API_KEY": "z"}).providers == {}


def test_master_key_generated_once_then_stored_hashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, {})
    first = master_key(settings)
    assert first.new_key is not None and first.new_key.startswith("sk-cw-")
    again = master_key(settings)
    assert again.new_key is None and again.hash == first.hash
    assert first.new_key.encode() not in (tmp_path / "crossway.db").read_bytes()
    rotated = master_key(settings, rotate=True)
    assert rotated.new_key not in (None, first.new_key) and rotated.hash != first.hash


def test_config_check_command(tmp_path: Path) -> None:
    good = write(tmp_path, GOOD.replace("${TEST_MASTER}", "m").replace("${TEST_OPENAI_KEY}", "o"))
    run = subprocess.run(
        [sys.executable, "-m", "crossway", "config", "check", "-c", str(good)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "OK" in run.stdout and "provider azure-eu: type azure" in run.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers:\n  o: {type: openai, api_key: k, base_url: nope}\n")
    run = subprocess.run(
        [sys.executable, "-m", "crossway", "config", "check", "-c", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert f"{bad}: providers.o.base_url" in run.stderr and "Traceback" not in run.stderr


def test_the_usage_flush_interval_reaches_the_recorder(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "usage_flush_seconds: 2.5\n"), {})
    master = MasterKey(hash_key("sk-test"), "test")
    assert build_services(settings, master).usage.flush_interval == 2.5
    default = load_settings(write(tmp_path, "{}\n"), {})
    assert build_services(default, master).usage.flush_interval == 0.1
