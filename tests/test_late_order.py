"""`late` in stream order: a line is late when it is at least the largest window older than a
line read before it, whatever batches the stream was cut into (worker `behind_lines` within a
batch, `Stats.merge` against the earlier ones), in `analyze`, live, and with the trends/history
that windows feed seeing every line that is not late."""
from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logtallyd.offline.analyze import run_analyze
from logtallyd.parsing import parse_line
from logtallyd.persist.config import HistoryConfig
from logtallyd.persist.history import History
from logtallyd.pool.worker import WorkerOptions, decode_result, process_batch
from logtallyd.records import Record
from logtallyd.stats.aggregate import Bucket, Partial
from logtallyd.stats.windows import Stats, StatsConfig
from tests.conftest import CORPUS, ServerProcess, send_tcp
from tests.test_analyze_report import embedded_data

NOW = 1_700_000_000.0
HORIZON = 900


def late_in_order(seconds: list[int], horizon: int = HORIZON) -> int:
    """The definition, by brute force: lines at least `horizon` older than any line before them."""
    return sum(1 for i, x in enumerate(seconds) if any(y - x >= horizon for y in seconds[:i]))


def frame(second: int, i: int) -> bytes:
    level = "error" if i % 7 == 0 else "info"
    return json.dumps({"ts": second + 0.25, "level": level, "service": f"s{i % 3}", "msg": f"m {i % 5}"}).encode()


def merged(frames: list[bytes], cuts: list[int], options: WorkerOptions) -> Stats:
    """The frames cut into batches at `cuts`, each through the worker, merged in stream order."""
    stats = Stats(StatsConfig(), NOW)
    bounds = [0, *sorted(set(cuts)), len(frames)]
    for seq, (a, b) in enumerate(zip(bounds, bounds[1:])):
        if a < b:
            result = decode_result(process_batch(frames[a:b], NOW, options, seq))
            stats.merge(Partial.from_bytes(result.partial), NOW)
    return stats


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.integers(-2000, 400), min_size=1, max_size=120),
       cuts=st.lists(st.integers(0, 120), max_size=6))
def test_late_is_the_same_however_the_stream_is_cut(steps: list[int], cuts: list[int]) -> None:
    """Random walks of event time (jumps forward, small and large steps back): `late` is the
    brute-force count in line order for every cutting, and so is everything reported."""
    seconds, t = [], int(NOW) - 100_000
    for step in steps:
        t += step
        seconds.append(t)
    frames = [frame(s, i) for i, s in enumerate(seconds)]
    options = WorkerOptions(behind_s=HORIZON)
    whole = merged(frames, [], options)
    cut = merged(frames, [c for c in cuts if c < len(frames)], options)
    one_by_one = merged(frames, list(range(len(frames))), options)
    expected = late_in_order(seconds)
    for stats in (whole, cut, one_by_one):
        assert stats.late == expected
        assert stats.received == stats.parsed == len(frames)
    reports = [s.report(w, NOW) for s in (whole, cut, one_by_one) for w in ("all", "15m")]
    for window in (0, 1):
        a, b, c = reports[window], reports[2 + window], reports[4 + window]
        assert a == b == c


def test_a_sparse_log_in_order_has_no_late_line_in_any_batch_size() -> None:
    """One line every 2 s: a batch of 4,000 spans 2 h 13 min, far more than the largest window;
    every line came after the one before it, so none is late (it was 3,550 of 4,000)."""
    seconds = [int(NOW) - 8000 + 2 * i for i in range(4000)]
    frames = [frame(s, i) for i, s in enumerate(seconds)]
    for cuts in ([], [1000, 2500], list(range(0, 4000, 333))):
        stats = merged(frames, cuts, WorkerOptions())
        assert stats.late == 0
        assert stats.report("15m", NOW)["parsed"] == 450  # the last 900 s of the log
        assert stats.report("all", NOW)["parsed"] == 4000


def test_wall_anchor_judges_by_the_clock_alone() -> None:
    """With `anchor = "wall"` the worker leaves lateness to the clock: old is late, order aside."""
    seconds = [int(NOW) - 5000 + i for i in range(100)] + [int(NOW) - 10 + i for i in range(10)]
    frames = [frame(s, i) for i, s in enumerate(seconds)]
    stats = Stats(StatsConfig(anchor="wall"), NOW)
    result = decode_result(process_batch(frames, NOW, WorkerOptions(behind_s=None), 0))
    stats.merge(Partial.from_bytes(result.partial), NOW)
    assert stats.late == 100 and stats.report("all", NOW)["parsed"] == 110


def test_a_future_line_sets_no_newest_line() -> None:
    """A line past the future guard does not make the lines after it late."""
    now = int(NOW)
    frames = [frame(now - 100, 0), frame(now + 86_400, 1), frame(now - 90, 2)]
    stats = Stats(StatsConfig(), NOW)
    result = decode_result(process_batch(frames, NOW, WorkerOptions(), 0))
    stats.merge(Partial.from_bytes(result.partial), NOW)
    assert (stats.late, stats.future) == (0, 1)


def test_retired_minutes_reach_on_retire_once_each() -> None:
    """A batch spanning more than the largest window: the minutes that came and went in one merge
    reach `on_retire` with all their lines; with the windows' minutes, every line not late."""
    seconds = [int(NOW) - 8000 + 2 * i for i in range(4000)]
    frames = [frame(s, i) for i, s in enumerate(seconds)]
    stats = Stats(StatsConfig(), NOW)
    retired: dict[int, int] = {}

    def retire(minute: int, bucket: Bucket) -> None:
        assert minute not in retired
        retired[minute] = bucket.lines

    stats.on_retire = retire
    result = decode_result(process_batch(frames, NOW, WorkerOptions(), 0))
    stats.merge(Partial.from_bytes(result.partial), NOW)
    assert sum(retired.values()) + sum(b.lines for b in stats.minutes.values()) == 4000
    assert set(retired).isdisjoint(stats.minutes)


def test_history_keeps_retired_rows_up_to_max_retired(tmp_path: Path) -> None:
    """The daemon's history holds rows of minutes retired between two writes, `max_retired` at
    most; past it they are counted as `rows_lost`, and a tick writes what was held."""
    import asyncio

    history = History(HistoryConfig(max_retired=60), str(tmp_path))
    stats = Stats(StatsConfig(), NOW)
    stats.on_retire = history.retire
    start = int(NOW) - 7200 - int(NOW) % 60
    frames = [frame(start + 60 * m + 5, m) for m in range(100)]  # 100 minutes, one line each
    result = decode_result(process_batch(frames, NOW, WorkerOptions(), 0))
    stats.merge(Partial.from_bytes(result.partial), NOW)
    kept = len(stats.minutes)
    assert len(history.retired) == 60 and history.rows_lost == 100 - kept - 60
    asyncio.run(history.tick(stats, NOW))
    answer = asyncio.run(history.answer(("lines",), 60, 3 * 3600, stats.anchor(NOW)))
    points = answer["series"]["lines"]
    assert [ts for ts, _ in points][:60] == [start + 60 * m for m in range(60)]
    assert all(n == 1 for _, n in points) and len(points) == 60 + kept - 1  # the anchor's minute is open
    assert history.figures()["rows_lost"] == 100 - kept - 60
    history.close()


def sparse_log(path: Path, n: int = 20_000, gap: int = 2) -> list[str]:
    start = int(time.time()) - n * gap - 3600
    rnd = random.Random(5)
    lines = [json.dumps({"ts": start + gap * i, "level": rnd.choice(("info", "info", "error")),
                         "service": "api", "msg": f"job {i % 17} done"}) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return lines


def test_analyze_of_a_sparse_log_counts_no_late_line_and_its_hours_hold_every_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The case that counted 17,300 of 20,000 in-order lines late: none now, in one process or
    three, and the HTML report's hours add up to every line."""
    path = tmp_path / "sparse.log"
    sparse_log(path)
    outs = []
    for workers in ("0", "2"):
        assert run_analyze([str(path), "--json", "--workers", workers]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0]["late"] == outs[1]["late"] == 0 and outs[0]["received"] == 20_000
    page = tmp_path / "report.html"
    assert run_analyze([str(path), "--workers", "2", "--html", str(page)]) == 0
    capsys.readouterr()
    data = embedded_data(page.read_text())
    assert data["report"]["late"] == 0
    assert sum(v for _, v in data["trends"]["hour"]["series"]["lines"]) == 20_000


def test_the_daemon_counts_a_sparse_burst_as_analyze_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same lines sent at once over TCP (batches cut by the daemon's deadline and size):
    the same `late` and totals as `analyze`."""
    path = tmp_path / "sparse.log"
    lines = sparse_log(path, n=6000)
    assert run_analyze([str(path), "--json", "--workers", "0"]) == 0
    batch = json.loads(capsys.readouterr().out)
    server = ServerProcess(tmp_path, '[state]\ndirectory = ""\n')
    try:
        send_tcp(server.address("tcp"), ("\n".join(lines) + "\n").encode())
        server.wait_received(len(lines))
        live = server.stats("all")
    finally:
        server.stop()
    assert live["late"] == batch["late"] == 0
    for key in ("received", "parsed", "errors", "by_level", "first_ts", "last_ts"):
        assert live[key] == batch[key], key


def _corpus_logs() -> list[Path]:
    return sorted((CORPUS / "loghub-2k").glob("*/*_2k.log")) if CORPUS.exists() else []


@pytest.mark.skipif(not _corpus_logs(), reason="../shared/corpus is absent")
def test_corpus_logs_count_late_lines_by_their_order(capsys: pytest.CaptureFixture[str]) -> None:
    """Each Loghub-2k log: `late` is the brute-force count over its parsed timestamps in line
    order (Apache's, in order over two days, counted 1,989 of 2,000 late before)."""
    checked = 0
    for path in _corpus_logs():
        assert run_analyze([str(path), "--json", "--workers", "0"]) == 0
        out = json.loads(capsys.readouterr().out)
        arrival = time.time()
        records = [parse_line(line, arrival) for line in path.read_text(errors="replace").splitlines()]
        # A line without a timestamp is filed at its arrival second, as the worker files it.
        seconds = [int(arrival) if r.ts is None else int(r.ts) for r in records if isinstance(r, Record)]
        future = int(arrival) + StatsConfig().max_future_s
        expected = late_in_order([s for s in seconds if s <= future])
        assert out["late"] == expected, path.name
        checked += 1
        if path.parent.name == "Apache":
            assert out["late"] == 0
    assert checked >= 5


def test_a_view_merging_a_nodes_partials_counts_its_late_lines() -> None:
    """The partials a node tees to its cluster outbox carry the lines it counted late, so a
    view that merges them (several a second, as the outbox does) counts the same `late`."""
    seconds = [int(NOW) - 50_000 + 10 * i for i in range(300)] + [int(NOW) - 60_000 + i for i in range(50)]
    seconds += [int(NOW) - 40_000 + i for i in range(50)]
    frames = [frame(s, i) for i, s in enumerate(seconds)]
    node, view = Stats(StatsConfig(), NOW), Stats(StatsConfig(), NOW)
    teed: list[bytes] = []
    node.tee = lambda partial: teed.append(partial.to_bytes())
    for seq, start in enumerate(range(0, len(frames), 37)):
        result = decode_result(process_batch(frames[start:start + 37], NOW, WorkerOptions(), seq))
        node.merge(Partial.from_bytes(result.partial), NOW)
    for start in range(0, len(teed), 3):  # an outbox second merges what came in it
        merged = Partial.from_bytes(teed[start])
        for data in teed[start + 1:start + 3]:
            merged.merge(Partial.from_bytes(data))
        view.merge(Partial.from_bytes(merged.to_bytes()), NOW)
    assert node.late == view.late == late_in_order(seconds) > 0
    assert node.report("all", NOW) == view.report("all", NOW)


def test_rejected_lines_of_a_batch_with_late_lines_keep_their_own_bytes() -> None:
    """A batch's rejected lines are filed at its newest second with the bytes no bucket holds:
    the late lines' bytes are not counted there a second time."""
    now = int(NOW)
    frames = [frame(now - 10, 0), frame(now - 5000, 1), b"", b"{broken", frame(now - 9, 2)]
    stats = Stats(StatsConfig(), NOW)
    result = decode_result(process_batch(frames, NOW, WorkerOptions(), 0))
    stats.merge(Partial.from_bytes(result.partial), NOW)
    assert stats.late == 1
    assert stats.report("all", NOW)["bytes"] == sum(map(len, frames))
    window = stats.report("15m", NOW)
    assert window["bytes"] == len(frames[0]) + len(frames[4]) + len(b"{broken")


def test_analyze_files_undated_lines_beside_their_neighbours(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 2015 log with stack-trace lines (no timestamp of their own): filed at the time this run
    read them, they moved the anchor to today and 2,994 of 3,030 lines were late. Now each is
    filed with the stamped line before it, in one process or three, the daemon still at arrival."""
    lines = []
    for i in range(3000):
        lines.append(f"2015-07-29 17:{i // 60 % 60:02d}:{i % 60:02d},000 - ERROR [main:Foo@1] - boom {i}")
        if i % 100 == 5:
            lines.append("\tat org.foo.Bar.baz(Bar.java:42)")
    path = tmp_path / "trace.log"
    path.write_text("\n".join(lines) + "\n")
    for workers in ("0", "2"):
        assert run_analyze([str(path), "--json", "--workers", workers]) == 0
        out = json.loads(capsys.readouterr().out)
        assert (out["received"], out["late"], out["by_format"]) == (3030, 0, {"app": 3000, "raw": 30})
        assert out["first_ts"] == 1438189200.0 and out["last_ts"] == 1438189200.0 + 2999
    frames = [b"\tat first", b'{"ts": 1438189200.5, "msg": "a"}', b"\tat x", b'{"ts": 1438189260.5, "msg": "b"}']
    filed = Partial.from_bytes(decode_result(process_batch(frames, NOW, WorkerOptions(undated="neighbour"))).partial)
    assert {s: b.lines for s, b in filed.buckets.items()} == {1438189200: 3, 1438189260: 1}
    live = Partial.from_bytes(decode_result(process_batch(frames, NOW, WorkerOptions())).partial)
    # Live, an undated line is filed at its arrival: the 2015 lines after it are late.
    assert {s: b.lines for s, b in live.buckets.items()} == {int(NOW): 2}
    assert sum(b.lines for b in live.behind.values()) == 2


def test_with_the_wall_anchor_late_lines_still_span_all() -> None:
    """`all` spans the late lines' seconds, newest included, with either anchor (lines_per_s)."""
    seconds = [int(NOW) - 5000 + i for i in range(100)]
    frames = [frame(s, i) for i, s in enumerate(seconds)]
    stats = Stats(StatsConfig(anchor="wall"), NOW)
    stats.merge(Partial.from_bytes(decode_result(process_batch(frames, NOW, WorkerOptions(behind_s=None))).partial), NOW)
    assert stats.late == 100 and (stats.first_second, stats.newest) == (seconds[0], seconds[-1])
