"""Worker settings from the environment: defaults, known names, and errors that name the variable to fix."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from pydantic import AliasChoices, ValidationError

from hf_connector.config import DEFAULT_ROUTER, ConfigurationError, OAuthClient, Settings, load_settings

CLIENT_SECRET = "camunda-client-secret-8d2f"
HF_TOKEN = "hf_workerToken_0c4e11"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting of the machine (or of the test session's broker) leaks into these tests."""
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        names = alias.choices if isinstance(alias, AliasChoices) else []
        for name in names:
            if isinstance(name, str):
                monkeypatch.delenv(name, raising=False)
                monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.chdir(tmp_path)


def _error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    return str(caught.value)


def test_defaults_work_without_any_variable() -> None:
    settings = load_settings()
    assert settings.job_type == "hugging-face"
    assert settings.router_url == DEFAULT_ROUTER
    assert settings.hf_token is None
    assert settings.max_jobs == 32
    assert settings.jobs_held == 64
    assert settings.stream_enabled is False
    assert settings.secret_env_prefix == "SECRET_"
    assert settings.follow_redirects is False
    assert settings.requests_per_minute == 3000
    assert settings.max_message_chars == 6000
    assert settings.allowed_hosts == []
    assert settings.credential_values() == []


def test_standard_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEEBE_ADDRESS", "zeebe:26500")
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    monkeypatch.setenv("HF_INFERENCE_ENDPOINT", "http://hf-proxy:8080/")
    monkeypatch.setenv("HF_CONNECTOR_JOB_TYPE", "hf-custom")
    monkeypatch.setenv("HF_CONNECTOR_MAX_JOBS", "4")
    monkeypatch.setenv("HF_CONNECTOR_FOLLOW_REDIRECTS", "true")
    monkeypatch.setenv("HF_CONNECTOR_SECRET_ENV_PREFIX", "CAMUNDA_SECRET_")
    settings = load_settings()
    assert settings.zeebe_address == "zeebe:26500"
    assert settings.hf_token is not None and settings.hf_token.get_secret_value() == HF_TOKEN
    assert settings.router_url == "http://hf-proxy:8080"
    assert settings.job_type == "hf-custom"
    assert settings.max_jobs == 4
    assert settings.follow_redirects is True
    assert settings.secret_env_prefix == "CAMUNDA_SECRET_"


def test_legacy_zeebe_names_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEEBE_CLIENT_ID", "legacy-id")
    monkeypatch.setenv("ZEEBE_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("ZEEBE_AUTHORIZATION_SERVER_URL", "https://login.example.com/oauth/token")
    settings = load_settings()
    assert settings.camunda_client_id == "legacy-id"
    assert settings.camunda_oauth_url == "https://login.example.com/oauth/token"
    assert settings.credential_values() == [CLIENT_SECRET]


def test_credentials_never_show_in_a_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    monkeypatch.setenv("CAMUNDA_CLIENT_ID", "id")
    monkeypatch.setenv("CAMUNDA_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("CAMUNDA_CLUSTER_ID", "cluster-1")
    settings = load_settings()
    assert HF_TOKEN not in repr(settings)
    assert CLIENT_SECRET not in str(settings)
    assert sorted(settings.credential_values()) == sorted([HF_TOKEN, CLIENT_SECRET])


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("HF_CONNECTOR_MAX_JOBS", "0", "greater than or equal to 1"),
        ("HF_CONNECTOR_MAX_JOBS", "many", "valid integer"),
        ("HF_CONNECTOR_READ_TIMEOUT_SECONDS", "-1", "greater than 0"),
        ("HF_CONNECTOR_HTTP_PORT", "70000", "less than or equal to 65535"),
        ("HF_CONNECTOR_MAX_RESPONSE_BYTES", "10", "greater than or equal to 1024"),
        ("HF_CONNECTOR_LOG_FORMAT", "xml", "'text' or 'json'"),
        ("HF_CONNECTOR_JOB_TIMEOUT_SECONDS", "4", "greater than or equal to 5"),
    ],
)
def test_an_invalid_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, words: str
) -> None:
    message = _error(monkeypatch, **{name: value})
    assert message.startswith("Invalid configuration:")
    assert f"- {name}: " in message
    assert words in message


def test_every_problem_is_listed_on_its_own_line(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _error(monkeypatch, HF_CONNECTOR_MAX_JOBS="0", HF_CONNECTOR_HTTP_PORT="-5")
    lines = message.splitlines()
    assert lines[0] == "Invalid configuration:"
    assert any(line.startswith("- HF_CONNECTOR_MAX_JOBS: ") for line in lines)
    assert any(line.startswith("- HF_CONNECTOR_HTTP_PORT: ") for line in lines)


def test_a_client_id_needs_its_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _error(monkeypatch, CAMUNDA_CLIENT_ID="id", CAMUNDA_OAUTH_URL="https://login.example.com")
    assert "CAMUNDA_CLIENT_ID and CAMUNDA_CLIENT_SECRET must be set together" in message


def test_a_client_secret_alone_is_refused_without_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _error(monkeypatch, CAMUNDA_CLIENT_SECRET=CLIENT_SECRET)
    assert "CAMUNDA_CLIENT_ID" in message
    assert CLIENT_SECRET not in message


def test_client_credentials_need_somewhere_to_get_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _error(monkeypatch, CAMUNDA_CLIENT_ID="id", CAMUNDA_CLIENT_SECRET=CLIENT_SECRET)
    assert "CAMUNDA_OAUTH_URL" in message
    assert "CAMUNDA_CLUSTER_ID" in message
    assert CLIENT_SECRET not in message


def test_jobs_held_follow_max_jobs_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_CONNECTOR_MAX_JOBS", "5")
    assert load_settings().jobs_held == 10
    monkeypatch.setenv("HF_CONNECTOR_MAX_JOBS_ACTIVE", "5")
    assert load_settings().jobs_held == 5


def test_fewer_jobs_held_than_handled_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _error(monkeypatch, HF_CONNECTOR_MAX_JOBS="8", HF_CONNECTOR_MAX_JOBS_ACTIVE="4")
    assert "HF_CONNECTOR_MAX_JOBS_ACTIVE (4) must be at least HF_CONNECTOR_MAX_JOBS (8)" in message


def test_the_inference_endpoint_must_be_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _error(monkeypatch, HF_INFERENCE_ENDPOINT="router.huggingface.co")
    assert "HF_INFERENCE_ENDPOINT must be an http(s) URL" in message


def test_an_invalid_token_value_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _error(monkeypatch, HF_TOKEN=HF_TOKEN, HF_CONNECTOR_MAX_JOBS="zero")
    assert HF_TOKEN not in message


@pytest.mark.parametrize(
    "value",
    [
        "router.huggingface.co,*.endpoints.huggingface.cloud",
        '["router.huggingface.co", "*.endpoints.huggingface.cloud"]',
    ],
)
def test_allowed_hosts_as_a_list(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("HF_CONNECTOR_ALLOWED_HOSTS", value)
    assert load_settings().allowed_hosts == ["router.huggingface.co", "*.endpoints.huggingface.cloud"]


def test_an_empty_secret_prefix_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HF_CONNECTOR_SECRET_ENV_PREFIX", "")
    with caplog.at_level(logging.WARNING, logger="hf_connector.config"):
        settings = load_settings()
    assert settings.secret_env_prefix == ""
    assert "HF_CONNECTOR_SECRET_ENV_PREFIX is empty" in caplog.text


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.max_jobs = 1  # type: ignore[misc]
    assert settings.max_jobs == 32


@pytest.mark.parametrize(("name", "value"), [("LOG_LEVEL", "LOUD"), ("ZEEBE_TLS", "maybe")])
def test_an_invalid_value_under_an_alternative_name_names_that_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    message = _error(monkeypatch, **{name: value})
    assert re.search(rf"(?<![A-Z_]){name}\b", message), message


# --- the Zeebe connection: one rule for the channel, the start-up line and `hf-connector check` -------


@pytest.mark.parametrize(
    ("env", "kind", "address", "oauth"),
    [
        ({}, "plaintext", "localhost:26500", None),
        ({"ZEEBE_ADDRESS": "zeebe:26500", "ZEEBE_TLS": "true"}, "tls", "zeebe:26500", None),
        (
            {"CAMUNDA_CLIENT_ID": "id", "CAMUNDA_CLIENT_SECRET": CLIENT_SECRET, "CAMUNDA_OAUTH_URL": "https://kc/t"},
            "oauth",
            "localhost:26500",
            OAuthClient("id", "https://kc/t", "zeebe-api"),
        ),
        (
            {"CAMUNDA_CLIENT_ID": "id", "CAMUNDA_CLIENT_SECRET": CLIENT_SECRET, "CAMUNDA_CLUSTER_ID": "c1"},
            "saas",
            "c1.bru-2.zeebe.camunda.io:443",
            OAuthClient("id", "https://login.cloud.camunda.io/oauth/token", "zeebe.camunda.io"),
        ),
        (
            # A cluster id with an address of its own: still SaaS, with SaaS's token URL and audience.
            {
                "ZEEBE_ADDRESS": "c1.jfk-1.zeebe.camunda.io:443",
                "CAMUNDA_CLIENT_ID": "id",
                "CAMUNDA_CLIENT_SECRET": CLIENT_SECRET,
                "CAMUNDA_CLUSTER_ID": "c1",
            },
            "saas",
            "c1.jfk-1.zeebe.camunda.io:443",
            OAuthClient("id", "https://login.cloud.camunda.io/oauth/token", "zeebe.camunda.io"),
        ),
        (
            {
                "CAMUNDA_CLIENT_ID": "id",
                "CAMUNDA_CLIENT_SECRET": CLIENT_SECRET,
                "CAMUNDA_CLUSTER_ID": "c1",
                "CAMUNDA_CLUSTER_REGION": "jfk-1",
                "CAMUNDA_TOKEN_AUDIENCE": "aud",
            },
            "saas",
            "c1.jfk-1.zeebe.camunda.io:443",
            OAuthClient("id", "https://login.cloud.camunda.io/oauth/token", "aud"),
        ),
    ],
    ids=["plaintext", "tls", "oauth", "saas", "saas-with-address", "saas-region-audience"],
)
def test_zeebe_connection_is_computed_once_from_the_settings(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], kind: str, address: str, oauth: OAuthClient | None
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    connection = load_settings().zeebe_connection
    assert (connection.kind, connection.address, connection.oauth) == (kind, address, oauth)
    assert connection.describe().startswith(address)
    assert CLIENT_SECRET not in connection.describe()
