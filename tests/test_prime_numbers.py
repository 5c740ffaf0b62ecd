"""Number parsing for prime commands: 1e9, 10**9, 1_000_000_000; rejections with a reason."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from logtallyd.primes.numbers import MAX_DIGITS, parse_number, parse_range


@pytest.mark.parametrize("text,value", [
    ("0", 0), ("42", 42), ("1e9", 10**9), ("1E9", 10**9), ("1e+9", 10**9), ("10**9", 10**9),
    ("1_000_000_000", 10**9), ("2.5e3", 2500), ("1.0", 1), ("3.", 3), ("+7", 7), (" 12 ", 12),
    ("1e0", 1), ("2**0", 1), ("0**0", 1), ("1e100", 10**100), ("007", 7),
])
def test_accepted(text: str, value: int) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize("text,reason", [
    ("-1", "negative"), ("-1e9", "negative"), ("1.5", "not an integer"), ("2.5e0", "not an integer"),
    ("abc", "not a number"), ("", "empty"), ("1e", "not a number"), ("_1", "not a number"),
    ("1__0", "not a number"), ("__import__('os')", "not a number"), ("10**-2", "not a number"),
    ("9**999999999", "too long"), ("1e100000", "too long"), ("1" * (MAX_DIGITS + 20), "too long"),
    ("0x10", "not a number"), ("1 2", "not a number"), ("nan", "not a number"), ("inf", "not a number"),
])
def test_rejected_with_reason(text: str, reason: str) -> None:
    r = parse_number(text)
    assert isinstance(r, str) and reason in r


@given(st.text(max_size=30))
def test_never_raises(text: str) -> None:
    assert isinstance(parse_number(text), (int, str))


@given(st.integers(0, 10**30))
def test_plain_and_underscored_round_trip(n: int) -> None:
    assert parse_number(str(n)) == n
    assert parse_number(f"{n:_}") == n


def test_range_limits_sit_exactly_at_the_limit() -> None:
    assert parse_range("1", "101", 100) == (1, 101)
    assert "range too large" in parse_range("1", "102", 100)
    assert parse_range("5", "5", 0) == (5, 5)
    assert "below lo" in parse_range("10", "9", 100)
    assert parse_range("1e9", "10**9", 0) == (10**9, 10**9)
    assert parse_range("0", "1e6", 10**6, max_value=10**6) == (0, 10**6)
    assert "hi too large" in parse_range("0", "1000001", 10**7, max_value=10**6)
    assert parse_range("x", "1", 10).startswith("lo: not a number")
    assert parse_range("1", "-1", 10).startswith("hi: negative")
