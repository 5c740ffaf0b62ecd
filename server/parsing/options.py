"""The `[parse]` config section: which formats a listener's lines may be read as."""
from __future__ import annotations

import msgspec

from server.records import FORMATS


class ParseOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[parse]`: formats auto-detection may choose ("raw" is always allowed), or one forced.

    infer_level_from_keywords: lines that carry no level of their own (raw lines, and BSD
    syslog file lines without PRI) get the severity of the first level word in them
    (`error`, `WARN`, `Fatal`..., whole words, any case; see `levels.infer_severity`).
    """

    formats: list[str] = msgspec.field(default_factory=lambda: list(FORMATS))
    force: str | None = None
    nested: bool = True
    infer_level_from_keywords: bool = True

    def __post_init__(self) -> None:
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown:
            raise ValueError(f"unknown formats {unknown}; known: {', '.join(FORMATS)}")
        if self.force is not None and self.force not in FORMATS:
            raise ValueError(f"unknown format {self.force!r}; known: {', '.join(FORMATS)}")
