"""The counters' baseline: totals taken from `Stats` and the detect counters, and what was counted
after a baseline, with plain values."""
from __future__ import annotations

import pytest

from logtallyd.stats.aggregate import Partial
from logtallyd.stats.config import StatsConfig
from logtallyd.stats.lifetime import Totals, status_class, totals_of
from logtallyd.stats.windows import Stats


@pytest.mark.parametrize(("status", "expected"), [
    (100, "1xx"), (200, "2xx"), (304, "3xx"), (404, "4xx"), (599, "5xx"), (0, "invalid"), (600, "invalid"), (99, "invalid"),
])
def test_status_class(status: int, expected: str) -> None:
    assert status_class(status) == expected


def test_since_subtracts_per_key_and_keeps_keys_new_since() -> None:
    start = Totals(received=10, parsed=7, bytes=100, late=1, rejected={"empty": 2}, by_level={"INFO": 7},
                   events={"zscore": 1})
    now = Totals(received=15, parsed=11, bytes=160, late=1, future=2, rejected={"empty": 2, "oversize": 1},
                 by_level={"INFO": 9, "ERROR": 2}, by_status_class={"5xx": 1}, events={"zscore": 3})
    assert now.since(start) == Totals(received=5, parsed=4, bytes=60, late=0, future=2,
                                      rejected={"empty": 0, "oversize": 1}, by_level={"INFO": 2, "ERROR": 2},
                                      by_status_class={"5xx": 1}, events={"zscore": 2})
    assert now.since(now) == Totals(rejected={"empty": 0, "oversize": 0}, by_level={"INFO": 0, "ERROR": 0},
                                    by_status_class={"5xx": 0}, events={"zscore": 0})


def test_totals_of_reads_the_since_start_figures_and_the_event_counters() -> None:
    stats = Stats(StatsConfig(), 0.0)
    partial = Partial()
    partial.reject("empty", 1)
    partial.reject("oversize", 70_000)
    stats.merge(partial, 1_738_238_400.0)
    totals = totals_of(stats, {"events_error_spike": 2, "events_zscore": 1, "feeds": 9, "records": 40})
    assert totals == Totals(received=2, parsed=0, bytes=70_001, rejected={"empty": 1, "oversize": 1},
                            events={"error_spike": 2, "zscore": 1})
    # a copy: later merges do not change a baseline already taken
    stats.merge(partial, 1_738_238_400.0)
    assert totals.rejected == {"empty": 1, "oversize": 1}
