"""`analyze` cuts, bounds and orders batches with the daemon's cores, in-process or in a pool."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from logtallyd.offline.analyze import analyze_paths


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_are_cut_by_lines_across_files_and_merged_in_order(tmp_path: Path, workers: int) -> None:
    (tmp_path / "a.log").write_text("".join(json.dumps({"msg": f"a{i}"}) + "\n" for i in range(7)))
    (tmp_path / "b.log").write_text("".join(json.dumps({"msg": f"b{i}"}) + "\n" for i in range(3)))
    merged: list[int] = []
    seqs: list[int] = []
    stats = analyze_paths([str(tmp_path)], workers=workers, batch_lines=3,
                          on_merge=lambda p, now: merged.append(p.received),
                          on_result=lambda seq, result: seqs.append(seq))
    # A batch does not end with a file: the 7th line of a.log and two of b.log share one.
    assert merged == [3, 3, 3, 1]
    assert seqs == [0, 1, 2, 3]
    assert (stats.received, stats.parsed) == (10, 10)


@pytest.mark.parametrize("workers", [0, 2])
def test_framing_errors_merge_before_the_batch_they_were_found_in(tmp_path: Path, workers: int) -> None:
    path = tmp_path / "a.log"
    path.write_text('{"msg": "1"}\n{"msg": "2"}\n' + "x" * 200 + '\n{"msg": "3"}\n{"msg": "4"}\n')
    merged: list[int] = []
    stats = analyze_paths([str(path)], workers=workers, batch_lines=2, max_message_bytes=100,
                          on_merge=lambda p, now: merged.append(p.received))
    assert merged == [1, 2, 2]  # the oversize line, then the two batches of the file's one chunk
    assert (stats.received, stats.parsed, dict(stats.rejected)) == (5, 4, {"oversize": 1})
