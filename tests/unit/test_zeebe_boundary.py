"""The Zeebe adapter's edges: it alone speaks gRPC, and its channel follows `Settings.zeebe_connection`."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from hf_connector import zeebe
from hf_connector.config import Settings
from tests.support.connector import REPO


def _imported_top_level_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_zeebe_adapter_imports_pyzeebe_or_grpc() -> None:
    offenders = []
    for path in sorted((REPO / "hf_connector").rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if relative == "hf_connector/zeebe.py":
            continue
        if found := _imported_top_level_modules(path) & {"pyzeebe", "grpc"}:
            offenders.append(f"{relative} imports {', '.join(sorted(found))}")
    assert offenders == []


@pytest.mark.parametrize(
    ("env", "factory", "address"),
    [
        ({"ZEEBE_ADDRESS": "zeebe:26500"}, "create_insecure_channel", "zeebe:26500"),
        ({"ZEEBE_ADDRESS": "zeebe:443", "ZEEBE_TLS": "true"}, "create_secure_channel", "zeebe:443"),
        (
            {"CAMUNDA_CLIENT_ID": "id", "CAMUNDA_CLIENT_SECRET": "s", "CAMUNDA_OAUTH_URL": "https://kc/token"},
            "create_oauth2_client_credentials_channel",
            "localhost:26500",
        ),
        (
            {"CAMUNDA_CLIENT_ID": "id", "CAMUNDA_CLIENT_SECRET": "s", "CAMUNDA_CLUSTER_ID": "c1"},
            "create_oauth2_client_credentials_channel",
            "c1.bru-2.zeebe.camunda.io:443",
        ),
    ],
    ids=["plaintext", "tls", "oauth", "saas"],
)
def test_the_channel_goes_where_the_settings_say(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], factory: str, address: str
) -> None:
    for field in Settings.model_fields.values():  # nothing from the machine's environment leaks in
        for alias in getattr(field.validation_alias, "choices", []):
            monkeypatch.delenv(str(alias), raising=False)
    calls: list[tuple[str, dict[str, Any]]] = []
    for name in ("create_insecure_channel", "create_secure_channel", "create_oauth2_client_credentials_channel"):
        monkeypatch.setattr(zeebe, name, lambda _name=name, **kwargs: calls.append((_name, kwargs)))
    settings = Settings(**{"HF_CONNECTOR_SECRETS_DIR": None, **env})  # type: ignore[arg-type]
    zeebe.create_channel(settings)
    assert [(name, kwargs["grpc_address"]) for name, kwargs in calls] == [(factory, address)]
    connection = settings.zeebe_connection
    if connection.oauth is not None:
        kwargs = calls[0][1]
        assert (kwargs["client_id"], kwargs["authorization_server"], kwargs["audience"]) == (
            connection.oauth.client_id,
            connection.oauth.token_url,
            connection.oauth.audience,
        )
        assert kwargs["client_secret"] == "s"
