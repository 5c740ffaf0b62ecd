"""Level words: every syslog keyword and its common abbreviations, in level fields and raw text."""
from __future__ import annotations

import pytest

from logtallyd.parsing import parse_line
from logtallyd.parsing.levels import _SEVERITY_BY_NAME, infer_severity, severity_of_name
from logtallyd.records import LEVELS

REF = 1764000000.0

NAMES = [
    ("emerg", 0), ("emergency", 0), ("panic", 0),
    ("alert", 1),
    ("crit", 2), ("critical", 2), ("fatal", 2), ("FTL", 2),
    ("err", 3), ("error", 3), ("ERRO", 3),
    ("warn", 4), ("warning", 4), ("WRN", 4),
    ("notice", 5),
    ("info", 6), ("informational", 6), ("INF", 6),
    ("debug", 7), ("trace", 7), ("verbose", 7), ("VRB", 7),
]


@pytest.mark.parametrize("name, severity", NAMES)
def test_level_names_any_case(name: str, severity: int) -> None:
    for spelling in (name, name.upper(), name.capitalize()):
        assert severity_of_name(spelling) == severity
        rec = parse_line('{"level":"%s","msg":"m"}' % spelling, REF)
        assert (rec.level, rec.severity) == (LEVELS[severity], severity)


@pytest.mark.parametrize("word, severity", [
    (w, s) for w, s in NAMES if len(w) > 4 or w in ("crit", "err", "warn", "info")
] + [("emerg", 0), ("EMERG", 0)])
def test_raw_lines_take_each_syslog_keyword(word: str, severity: int) -> None:
    assert infer_severity(f"disk {word}: sda1 is full") == severity
    rec = parse_line(f"kernel said {word.upper()} on sda1", REF)
    assert (rec.format, rec.level) == ("raw", LEVELS[severity])


@pytest.mark.parametrize("text", ["stderr is closed", "the criteria changed", "errno 2", "information",
                                  "inf loop", "erroneous input"])
def test_keywords_are_whole_words_only(text: str) -> None:
    assert infer_severity(text) is None


def test_the_level_domain_stays_the_eight_severities() -> None:
    # STATS by_level counts LEVELS (plus OTHER): no name can add a key to it.
    assert set(_SEVERITY_BY_NAME.values()) == set(range(len(LEVELS)))
    assert severity_of_name("chatty") is None and severity_of_name("x" * 100) is None
