"""The `[parse]` config section: which formats a listener's lines may be read as."""
from __future__ import annotations

import msgspec

from logtallyd.records import FORMATS, Format


class ParseOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[parse]`: formats auto-detection may choose ("raw" is always allowed), or one forced.

    infer_level_from_keywords: lines that carry no level of their own (raw lines, and BSD
    syslog file lines without PRI) get the severity of the first level word in them
    (`error`, `WARN`, `Fatal`..., whole words, any case; see `levels.infer_severity`).
    """

    formats: list[Format] = msgspec.field(default_factory=lambda: list(FORMATS))
    force: Format | None = None
    nested: bool = True
    infer_level_from_keywords: bool = True
