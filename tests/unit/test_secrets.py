"""Secret placeholders, the places their values come from, and masking them out of every sink."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_connector.secrets import (
    MASK,
    DirectorySecrets,
    DotenvSecrets,
    EnvironmentSecrets,
    Masker,
    MissingSecretError,
    SecretResolver,
    build_providers,
)

TOKEN = "hf_secretToken_4b1d"
OTHER = "other-secret-value"


def _resolver(values: dict[str, str], masker: Masker | None = None) -> SecretResolver:
    environ = {f"SECRET_{name}": value for name, value in values.items()}
    return SecretResolver([EnvironmentSecrets(environ=environ)], masker or Masker())


# --- resolution -------------------------------------------------------------------------------------


def test_placeholders_are_replaced_in_every_string_of_nested_data() -> None:
    resolver = _resolver({"HF": TOKEN, "OTHER": OTHER})
    data = {
        "authentication": {"token": "{{secrets.HF}}"},
        "input": {"inputs": ["say <<secrets.OTHER>>", 3, None, True], "parameters": {"x": 1.5}},
        "headers": "Bearer {{ secrets.HF }} and {{secrets.HF}}",
    }
    assert resolver.resolve(data) == {
        "authentication": {"token": TOKEN},
        "input": {"inputs": [f"say {OTHER}", 3, None, True], "parameters": {"x": 1.5}},
        "headers": f"Bearer {TOKEN} and {TOKEN}",
    }


def test_resolution_does_not_change_the_original() -> None:
    original = {"token": "{{secrets.HF}}"}
    _resolver({"HF": TOKEN}).resolve(original)
    assert original == {"token": "{{secrets.HF}}"}


def test_names_with_dots_and_dashes_are_allowed() -> None:
    assert _resolver({"team.hf-key_1": TOKEN}).resolve("{{secrets.team.hf-key_1}}") == TOKEN


def test_text_that_only_looks_like_a_placeholder_is_left_alone() -> None:
    resolver = _resolver({})
    for text in ["{{secret.X}}", "{{ secrets. }}", "secrets.X", "{secrets.X}", "<secrets.X>"]:
        assert resolver.resolve(text) == text


def test_a_resolved_value_is_not_resolved_again() -> None:
    resolver = _resolver({"A": "{{secrets.B}}", "B": TOKEN})
    assert resolver.resolve("{{secrets.A}}") == "{{secrets.B}}"


def test_a_missing_secret_is_named() -> None:
    with pytest.raises(MissingSecretError) as caught:
        _resolver({"HF": TOKEN}).resolve({"a": ["{{secrets.HF}}", "{{secrets.NOPE}}"]})
    assert caught.value.secret_name == "NOPE"
    assert str(caught.value).startswith("Secret with name 'NOPE' is not available")
    assert "environment variable SECRET_NOPE" in str(caught.value)


def test_the_first_provider_that_knows_a_secret_wins(tmp_path: Path) -> None:
    (tmp_path / "HF").write_text("from-directory\n")
    (tmp_path / "ONLY_FILE").write_text("only-in-directory")
    env = EnvironmentSecrets(environ={"SECRET_HF": "from-environment"})
    resolver = SecretResolver([env, DirectorySecrets(tmp_path)], Masker())
    assert resolver.resolve("{{secrets.HF}}") == "from-environment"
    assert resolver.resolve("{{secrets.ONLY_FILE}}") == "only-in-directory"


def test_resolved_values_are_masked_from_then_on() -> None:
    masker = Masker()
    _resolver({"HF": TOKEN}, masker).resolve("{{secrets.HF}}")
    assert masker.mask(f"the server said {TOKEN}") == f"the server said {MASK}"


# --- providers --------------------------------------------------------------------------------------


def test_the_environment_provider_reads_only_prefixed_variables() -> None:
    provider = EnvironmentSecrets(environ={"HF_TOKEN": "worker-credential", "SECRET_HF_TOKEN": "for-models"})
    # A modeller asking for {{secrets.HF_TOKEN}} gets SECRET_HF_TOKEN, never the worker's own HF_TOKEN.
    assert provider.get("HF_TOKEN") == "for-models"
    assert EnvironmentSecrets(environ={"CAMUNDA_CLIENT_SECRET": "x"}).get("CAMUNDA_CLIENT_SECRET") is None


def test_the_environment_prefix_is_configurable() -> None:
    provider = EnvironmentSecrets(prefix="MY_", environ={"MY_KEY": "v", "SECRET_KEY": "w"})
    assert provider.get("KEY") == "v"


def test_the_environment_provider_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_UNIT_TEST_VALUE", "from-os-environ")
    assert EnvironmentSecrets().get("UNIT_TEST_VALUE") == "from-os-environ"


def test_directory_secrets_are_files_without_their_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "TOKEN").write_text("abc def\r\n")
    provider = DirectorySecrets(tmp_path)
    assert provider.get("TOKEN") == "abc def"
    assert provider.get("MISSING") is None


def test_directory_secrets_cannot_escape_the_directory(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (tmp_path / "outside").write_text("not a secret of this directory")
    (secrets_dir / "sub").mkdir()
    (secrets_dir / "sub" / "nested").write_text("nested")
    provider = DirectorySecrets(secrets_dir)
    assert provider.get("../outside") is None
    assert provider.get("sub/nested") is None
    assert provider.get("sub") is None
    assert provider.get("..") is None


def test_a_missing_directory_knows_no_secret(tmp_path: Path) -> None:
    assert DirectorySecrets(tmp_path / "nowhere").get("X") is None


def test_dotenv_secrets_use_names_as_written(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text('HF_TOKEN="hf_fromDotenv"\nEMPTY\nPLAIN=value # comment\n')
    provider = DotenvSecrets(path)
    assert provider.get("HF_TOKEN") == "hf_fromDotenv"
    assert provider.get("PLAIN") == "value"
    assert provider.get("EMPTY") is None
    assert provider.get("SECRET_HF_TOKEN") is None


def test_build_providers_orders_environment_directory_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / "s.env"
    dotenv.write_text("A=1\n")
    providers = build_providers("P_", tmp_path, dotenv)
    assert [p.name for p in providers] == ["environment", "directory", "dotenv"]
    assert providers[0].prefix == "P_"  # type: ignore[attr-defined]
    assert [p.name for p in build_providers("SECRET_", None, None)] == ["environment"]


# --- masking ----------------------------------------------------------------------------------------


def test_masking_replaces_every_occurrence() -> None:
    masker = Masker([TOKEN, OTHER])
    assert masker.mask(f"{TOKEN}/{OTHER}/{TOKEN}") == f"{MASK}/{MASK}/{MASK}"


def test_a_secret_containing_another_is_masked_whole() -> None:
    masker = Masker(["abcd", "xxabcdxx"])
    assert masker.mask("=xxabcdxx=") == f"={MASK}="


def test_very_short_values_are_not_masked() -> None:
    masker = Masker(["abc", ""])
    assert masker.mask("abc abc") == "abc abc"
    assert masker.mask_data({"k": "abc"}) == {"k": "abc"}


def test_masking_data_covers_keys_values_and_lists_and_leaves_other_types() -> None:
    masker = Masker([TOKEN])
    data = {TOKEN: [f"x{TOKEN}x", {"n": 1, "b": True, "none": None}], "t": (TOKEN, 2.5)}
    assert masker.mask_data(data) == {MASK: [f"x{MASK}x", {"n": 1, "b": True, "none": None}], "t": [MASK, 2.5]}
    assert data[TOKEN][0] == f"x{TOKEN}x"  # the original is untouched


def test_a_json_escaped_echo_of_a_secret_is_masked() -> None:
    secret = 'p"ss\\wörd\n1'
    masker = Masker([secret])
    echoed = json.dumps({"you sent": f"Bearer {secret}"})
    assert secret not in masker.mask(echoed)
    assert json.dumps(secret)[1:-1] not in masker.mask(echoed)


def test_a_json_echo_without_ascii_escapes_is_masked() -> None:
    secret = 'pä"ss1234'
    masker = Masker([secret])
    echoed = json.dumps({"you sent": secret}, ensure_ascii=False)
    masked = masker.mask(echoed)
    assert json.dumps(secret, ensure_ascii=False)[1:-1] not in masked
    assert "ss1234" not in masked


def test_adding_values_later_extends_the_mask() -> None:
    masker = Masker()
    assert masker.mask(TOKEN) == TOKEN
    masker.add([TOKEN])
    masker.add([TOKEN])
    assert masker.mask(TOKEN) == MASK


def test_regex_characters_in_secrets_are_literal() -> None:
    masker = Masker(["a.b*c+d"])
    assert masker.mask("a.b*c+d aXbbbcd") == f"{MASK} aXbbbcd"
