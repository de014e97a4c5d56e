"""The benchmark warms the broker up until it stops getting faster, so no subject pays for a cold broker."""

from __future__ import annotations

import pytest

from bench.core import stopped_getting_faster


@pytest.mark.parametrize(
    ("rates", "stopped"),
    [
        ([120.0, 150.0, 151.0], False),  # too few chunks to see a trend
        ([75.0, 125.0, 171.0, 169.0, 165.0], False),  # two flat chunks: a plateau, not the end of warm-up
        ([75.0, 125.0, 171.0, 169.0, 165.0, 178.0], True),  # three within 5 % of the best before them
        ([75.0, 125.0, 171.0, 169.0, 165.0, 205.0], False),  # 20 % faster: still warming up
        ([120.0, 150.0, 140.0, 150.0, 145.0], True),  # slower and equal: noise, not warm-up
    ],
)
def test_warm_up_stops_once_chunks_are_no_longer_clearly_faster(rates: list[float], stopped: bool) -> None:
    assert stopped_getting_faster(rates) is stopped
