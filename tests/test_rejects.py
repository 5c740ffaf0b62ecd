"""The rejects file (logtallyd.persist.rejects): rotation keeps it within max_bytes however much
arrives at once."""
from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from logtallyd.persist.rejects import RejectsFile, plan_writes


def test_plan_rotates_before_the_entry_that_would_not_fit() -> None:
    assert plan_writes(0, [b"a" * 4, b"b" * 4, b"c" * 4], 8) == [(False, [b"aaaa", b"bbbb"]), (True, [b"cccc"])]
    assert plan_writes(6, [b"a" * 4], 8) == [(True, [b"aaaa"])]
    assert plan_writes(0, [], 8) == []


@given(st.integers(0, 64), st.lists(st.binary(min_size=1, max_size=64)), st.integers(64, 256))
def test_planned_files_never_exceed_the_bound_and_keep_every_entry_in_order(
        size: int, entries: list[bytes], max_bytes: int) -> None:
    plan = plan_writes(size, entries, max_bytes)
    assert [e for _, run in plan for e in run] == entries
    current = size
    for rotate, run in plan:
        current = (0 if rotate else current) + sum(map(len, run))
        assert current <= max_bytes


async def test_one_large_burst_stays_within_max_bytes(tmp_path: Path) -> None:
    path = tmp_path / "rejects.log"
    rejects = RejectsFile(str(path), 4096)
    rejects.start()
    for i in range(1000):
        rejects.write(1.0, "oversize", "127.0.0.1:1", b"x" * 150 + str(i).encode())
    rejects.write(2.0, "oversize", "127.0.0.1:1", b"y" * 65536)  # longer than the file's bound
    await rejects.close()
    assert path.stat().st_size <= 4096
    assert Path(str(path) + ".1").stat().st_size <= 4096
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["line"] == "y" * 2048
    assert rejects.written == 1001 and rejects.dropped == 0
