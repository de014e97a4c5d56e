"""ISO-8601 durations as Camunda uses them for retry backoff (`PT30S`, `PT1M30S`, `P1D`)."""

from __future__ import annotations

import re

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_SECONDS_PER_UNIT = {"weeks": 604_800, "days": 86_400, "hours": 3_600, "minutes": 60, "seconds": 1}


def parse_iso_duration(text: str) -> float:
    """Seconds in an ISO-8601 duration; raises ValueError with an example of the expected form."""
    match = _DURATION.match(text.strip().upper())
    if not match:
        raise ValueError(f"'{text}' is not an ISO-8601 duration such as PT30S, PT5M or P1D")
    return sum(float(value) * _SECONDS_PER_UNIT[unit] for unit, value in match.groupdict().items() if value)
