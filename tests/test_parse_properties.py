"""Property tests: no input makes a parser raise, and parsing is a pure function of its inputs."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from logtallyd.parsing import ParseOptions, parse_line
from logtallyd.records import FORMATS, LEVELS, Record, Rejected

# Prefixes that steer the detector into each parser, then arbitrary text after them.
PREFIXES = [
    "", "<", "<13>", "<165>1 ", "<165>1 2003-10-11T22:14:15.003Z h a p m ", "<1>1 - - - - - [",
    "<34>Oct 11 22:14:15 ", "Jun 14 15:16:01 combo ", "{", '{"level":', '{"ts":"2025-',
    "1.2.3.4 - - [", "::1 - - [26/Dec/2016:16:16:29 +0200] \"", "[10/Aug/2018:09:45:56 +0200] ",
    "2025-01-30 12:00:00,123 ", "2025-01-30T12:00:00Z INFO [", "17/06/09 20:10:40 ", "081109 203615 1 ",
    "[Sun Dec 04 04:47:44 2005] [", "<14>Jan 12 05:30:00 web nginx: 1.2.3.4 - - [",
]
ALPHABET = st.characters(codec="utf-8") | st.sampled_from(list(' <>[]{}":=-\\0123456789TZ.,/\n\t\ufeff'))
OPTIONS = [None, ParseOptions(nested=False, infer_level_from_keywords=False),
           ParseOptions(formats=["json", "access"])] + [ParseOptions(force=f) for f in FORMATS]


def _check(result: object) -> None:
    assert isinstance(result, (Record, Rejected))
    if isinstance(result, Record):
        assert result.format in FORMATS
        assert result.severity is None or LEVELS[result.severity] == result.level
        assert result.ts is None or isinstance(result.ts, float)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(PREFIXES), st.text(ALPHABET, max_size=120),
       st.floats(min_value=0, max_value=4e9) | st.floats(), st.sampled_from(OPTIONS))
def test_no_input_raises(prefix: str, tail: str, ref_ts: float, options: ParseOptions | None) -> None:
    line = prefix + tail
    first = parse_line(line, ref_ts, options)
    _check(first)
    assert parse_line(line, ref_ts, options) == first


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.floats(allow_nan=True, allow_infinity=True))
def test_any_text_any_clock(line: str, ref_ts: float) -> None:
    try:
        result = parse_line(line, ref_ts)
    except Exception as exc:  # pragma: no cover - report the input
        raise AssertionError(f"parse_line({line!r}, {ref_ts!r}) raised {exc!r}") from exc
    _check(result)
