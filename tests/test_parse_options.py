"""`[parse]` options: allowed formats, force, keyword levels, validation."""
from __future__ import annotations

import msgspec
import pytest

from logtallyd.parsing import ParseOptions, parse_line
from logtallyd.records import Record, Rejected

REF = 1764000000.0


def test_disallowed_format_becomes_raw() -> None:
    opts = ParseOptions(formats=["rfc5424"])
    assert parse_line('{"msg":"x"}', REF, opts) == Record(format="raw", message='{"msg":"x"}')
    assert parse_line('{broken', REF, opts).format == "raw"  # not invalid_json: JSON is off
    assert parse_line("<14>1 - h a - - - hi", REF, opts).format == "rfc5424"


def test_rfc3164_off_keeps_bad_5424_out_of_rfc5424() -> None:
    rec = parse_line("<14>1 - h a - - X hi", REF, ParseOptions(formats=["rfc5424"]))
    assert rec == Record(format="raw", message="<14>1 - h a - - X hi")


@pytest.mark.parametrize("force,line,expected", [
    ("rfc5424", "<14>Jan  1 00:00:00 h t: x", Rejected("invalid_rfc5424")),
    ("rfc3164", "hello", Rejected("invalid_rfc3164")),
    ("json", "hello", Rejected("invalid_json")),
    ("raw", '{"msg":"x"}', Record(format="raw", message='{"msg":"x"}')),
    ("rfc5424", "<999>1 - - - - - -", Rejected("bad_pri")),
    ("app", "", Rejected("empty")),
])
def test_force(force: str, line: str, expected: object) -> None:
    assert parse_line(line, REF, ParseOptions(force=force)) == expected


def test_keyword_levels_switch() -> None:
    assert parse_line("disk error on sda", REF).level == "ERROR"
    assert parse_line("Warning: low memory", REF).level == "WARNING"
    assert parse_line("no errors today", REF).level is None  # whole words only
    off = ParseOptions(infer_level_from_keywords=False)
    assert parse_line("disk error on sda", REF, off) == Record(format="raw", message="disk error on sda")


def test_options_decode_from_config_and_validate() -> None:
    opts = msgspec.convert({"formats": ["json", "raw"], "force": None, "nested": False}, ParseOptions)
    assert opts == ParseOptions(formats=["json", "raw"], nested=False)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"formats": ["xml"]}, ParseOptions)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"force": "csv"}, ParseOptions)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"format": "json"}, ParseOptions)  # unknown key
