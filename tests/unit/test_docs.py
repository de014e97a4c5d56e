"""The docs stay true: generated tables match the code, and every relative link lands on a file and heading."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from hf_connector.config import Settings
from hf_connector.config_table import environment_names, markdown_table, replace_table
from tests.support.connector import REPO

CONFIGURATION = REPO / "docs" / "configuration.md"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _prose(text: str) -> str:
    """The text a reader sees as prose: code blocks and code spans removed, so `[x](y)` in code is no link."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", _FENCE.sub("", page.read_text(encoding="utf-8")), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in _LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not this repository's
            continue
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target} (no such heading)")
    return broken


def test_the_configuration_table_is_the_one_generated_from_settings() -> None:
    page = CONFIGURATION.read_text(encoding="utf-8")
    assert replace_table(page) == page, (
        "docs/configuration.md's variables table differs from Settings: "
        "run `python -m hf_connector.config_table --write docs/configuration.md`"
    )


def test_every_variable_the_worker_reads_is_documented_with_its_default() -> None:
    table = markdown_table()
    for name, field in Settings.model_fields.items():
        variable = environment_names(name, field)[0]
        assert f"| `{variable}` " in table, f"{variable} is missing from the configuration table"
    assert "| `HF_CONNECTOR_MAX_JOBS` | `32` |" in table
    assert "| `HF_CONNECTOR_FOLLOW_REDIRECTS` | `false` |" in table
    assert "| `HF_CONNECTOR_LOG_LEVEL` (or `LOG_LEVEL`) | `INFO` |" in table


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    broken = broken_links(page)
    assert not broken, f"{page.relative_to(REPO)} links to what does not exist: {broken}"


def test_the_link_check_notices_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## A section: `with code`\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#a-section-with-code) [gone](nowhere.md) [wrong](other.md#no-such-heading)\n"
        "`[in code](nowhere.md)` [web](https://example.com/x)\n",
        encoding="utf-8",
    )
    assert broken_links(page) == [
        "nowhere.md (no such file)",
        "other.md#no-such-heading (no such heading)",
    ]


def test_every_product_module_is_described_in_the_developers_guide() -> None:
    guide = (REPO / "docs" / "development.md").read_text(encoding="utf-8")
    undescribed = [
        str(path.relative_to(REPO))
        for path in sorted((REPO / "hf_connector").rglob("*.py"))
        if path.stem not in {"__init__", "__main__"} and f"`{path.stem}`" not in guide
    ]
    assert not undescribed, f"docs/development.md does not describe {undescribed}"


def test_nothing_cites_a_file_outside_the_repository() -> None:
    """A clone is all a reader has: code and docs state facts instead of pointing at notes elsewhere."""
    outside = re.compile(r"REFERENCE\.md|/work/|shared/hooks")
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, check=True, capture_output=True, text=True).stdout
    citing = [
        name
        for name in tracked.split()
        if name.endswith((".py", ".md", ".toml", ".mjs", ".yml", "Makefile", "Dockerfile"))
        and name != "tests/unit/test_docs.py"
        and outside.search((REPO / name).read_text(encoding="utf-8", errors="replace"))
    ]
    assert citing == []
