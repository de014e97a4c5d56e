"""The README stays true: its configuration table names every setting the worker reads."""

from __future__ import annotations

from pydantic import AliasChoices

from hf_connector.config import Settings
from tests.support.connector import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_configuration_table() -> None:
    missing = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names = [a for a in alias.choices if isinstance(a, str)] if isinstance(alias, AliasChoices) else [name.upper()]
        if f"`{names[0]}`" not in README:
            missing.append(names[0])
    assert not missing, f"README.md's configuration table lacks {missing}"


def test_the_two_commands_are_at_the_top() -> None:
    top = README[:1500]
    assert "make run" in top and "make test" in top
