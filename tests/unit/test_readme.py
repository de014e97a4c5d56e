"""The README stays a two-minute read that leads a newcomer to the right page and section."""

from __future__ import annotations

import re

from tests.support.connector import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def _sections() -> list[str]:
    return re.findall(r"^## (.+)$", README, re.M)


def test_the_readme_is_at_most_150_lines() -> None:
    lines = len(README.splitlines())
    assert lines <= 150, f"README.md has {lines} lines: move detail into docs/ and link to it"


def test_the_two_commands_are_at_the_top() -> None:
    top = README[:1500]
    assert "make run" in top and "make test" in top


def test_the_sections_come_in_the_order_a_newcomer_needs_them() -> None:
    sections = _sections()
    expected = ["Two commands", "First run", "Three paths", "Performance"]
    assert [s for s in sections if s in expected] == expected, f"README sections are {sections}"


def test_the_first_run_names_the_secret_and_the_commands() -> None:
    first_run = README.split("## First run", 1)[1].split("\n## ", 1)[0]
    for needed in ("SECRET_HUGGING_FACE_TOKEN", "make run", "make example NAME=", "make demo"):
        assert needed in first_run, f"the first run lacks {needed}"


def test_each_reader_has_a_page() -> None:
    paths = README.split("## Three paths", 1)[1].split("\n## ", 1)[0]
    for page in ("docs/modelling.md", "docs/configuration.md", "docs/operations.md", "docs/development.md"):
        assert f"]({page}" in paths, f"the three paths do not link {page}"


def test_the_common_questions_link_to_the_exact_section() -> None:
    for section in (
        "docs/development.md#the-path-of-one-job",  # where a job's secrets are resolved
        "docs/development.md#adding-a-field-or-a-chat-parameter",  # how to add a chat parameter
        "#first-run",  # how to run one example
    ):
        assert f"]({section})" in README, f"README.md does not link {section}"


def test_performance_points_at_the_benchmark_page() -> None:
    performance = README.split("## Performance", 1)[1]
    assert "](docs/benchmark.md)" in performance
