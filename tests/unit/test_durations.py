"""ISO-8601 retry backoff durations as a modeller writes them in the `retryBackoff` header."""

from __future__ import annotations

import pytest

from hf_connector.durations import parse_iso_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT0S", 0.0),
        ("PT30S", 30.0),
        ("PT5M", 300.0),
        ("PT1M30S", 90.0),
        ("PT2H", 7200.0),
        ("P1D", 86_400.0),
        ("P1DT1H", 90_000.0),
        ("P2W", 1_209_600.0),
        ("PT1.5S", 1.5),
        ("pt30s", 30.0),
        ("  PT10S  ", 10.0),
    ],
)
def test_durations_convert_to_seconds(text: str, seconds: float) -> None:
    assert parse_iso_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "P", "PT", "P1DT", "30s", "30", "PT-5S", "-PT5S", "PT5X", "P1Y", "T30S", "PT30S "]
)
def test_malformed_durations_are_refused_with_an_example(text: str) -> None:
    if text == "PT30S ":
        # Surrounding whitespace is tolerated: a modeller's stray space must not break the job.
        assert parse_iso_duration(text) == 30.0
        return
    with pytest.raises(ValueError) as caught:
        parse_iso_duration(text)
    message = str(caught.value)
    assert f"'{text}'" in message
    assert "PT30S" in message
