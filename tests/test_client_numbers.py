"""The client's one number style, table-driven: counts, rates, percentages, bytes, times, durations."""
from __future__ import annotations

import pytest

from logtally.numbers import ago, count, duration, iso_time, percent, rate, size


@pytest.mark.parametrize(("value", "text"), [
    (0, "0"), (7, "7"), (3000, "3000"), (9999, "9999"), (10000, "10,000"), (450451, "450,451"),
    (70355291824, "70,355,291,824"), (-12345, "-12,345"), (12.0, "12"), (2.5, "2.5"),
])
def test_count(value: float, text: str) -> None:
    assert count(value) == text


@pytest.mark.parametrize(("value", "text"), [
    (0.0, "0.0"), (3.3333, "3.3"), (9999.94, "9999.9"), (12345.67, "12,345.7"),
])
def test_rate(value: float, text: str) -> None:
    assert rate(value) == text


@pytest.mark.parametrize(("value", "text"), [
    (0.0, "0.00%"), (0.03007, "3.01%"), (0.0483, "4.83%"), (0.001301, "0.13%"), (1.0, "100.00%"),
])
def test_percent(value: float, text: str) -> None:
    assert percent(value) == text


@pytest.mark.parametrize(("value", "text"), [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (70355291824, "65.5 GiB"),
    (67.1 * 2**20, "67.1 MiB"), (2**50 * 3, "3.0 PiB"), (2**60, "1024.0 PiB"),
])
def test_size(value: float, text: str) -> None:
    assert size(value) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (45.9, "45s"), (60, "1m 00s"), (723, "12m 03s"), (3725, "1h 02m"), (190000, "2d 04h"), (-5, "0s"),
])
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_times_are_iso_8601_utc_or_relative() -> None:
    assert iso_time(1738238400.0) == "2025-01-30T12:00:00Z"
    assert iso_time(1e30) == "1e+30"  # out of range: the number as it came
    assert ago(1738238388.0, 1738238400.0) == "12s ago"
    assert ago(1738238405.0, 1738238400.0) == "in 5s"
