"""Top-N honesty (`logtallyd.stats.tally` through `Stats`): exact counts below the budget, and past
it bounds that always hold, ranked by the lower bound and marked approximate.

Streams are fed as workers feed the main process: one batch of exact counts per event second.
"""
from __future__ import annotations

import collections
import subprocess
import sys
from typing import Any

import msgspec
import numpy as np
import pytest

from logtallyd.stats.aggregate import Bucket, Partial
from logtallyd.stats.tally import Row, Tally
from logtallyd.stats.windows import Stats, StatsConfig
from tests.conftest import ROOT, metric, send_tcp

T0 = 1_700_000_000
BATCH = 4000  # `[pipeline] batch_lines`


def zipf_stream(lines: int, keys: int, s: float, seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, keys + 1, dtype=np.float64) ** s
    ranks = rng.choice(keys, size=lines, p=weights / weights.sum())
    names = rng.permutation(keys)  # the heaviest keys are not the first names
    return [f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}" for n in names[ranks].tolist()]


def feed(stats: Stats, stream: list[str], per_second: int = BATCH) -> float:
    """One partial per second of `per_second` lines; returns the clock of the last."""
    second = T0
    for i in range(0, len(stream), per_second):
        counts = dict(collections.Counter(stream[i:i + per_second]))
        bucket = Bucket(lines=len(stream[i:i + per_second]), tally={"ip": Tally(counts)})
        partial = Partial(received=bucket.lines, parsed=bucket.lines, buckets={second: bucket})
        stats.merge(Partial.from_bytes(partial.to_bytes()), second)  # across the pipe, as from a worker
        second += 1
    return float(second - 1)


def true_top(truth: collections.Counter[str], n: int) -> list[tuple[str, int]]:
    return sorted(truth.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def test_zipf_top_10_by_lower_bound_is_the_true_top_10_within_1_percent() -> None:
    stream = zipf_stream(2_000_000, 500_000, 1.1)
    truth = collections.Counter(stream)
    stats = Stats(StatsConfig(), T0)
    now = feed(stats, stream)
    rows = stats.top("ip", 10, "all", now)
    assert [r["value"] for r in rows] == [v for v, _ in true_top(truth, 10)]
    for row in rows:
        true = truth[row["value"]]
        assert row["approximate"] is True and "count" not in row
        assert row["lower"] <= true <= row["upper"]
        assert true - row["lower"] <= 0.01 * true and row["upper"] - true <= 0.01 * true, row
    # the rows come ranked by the lower bound
    assert [r["lower"] for r in rows] == sorted((r["lower"] for r in rows), reverse=True)
    # windows are bounded honestly too (their edges are coarser per-second sketches)
    for row in stats.top("ip", 10, "15m", now):
        assert row["lower"] <= truth[row["value"]] <= row["upper"], row


def test_a_flat_stream_never_shows_a_lower_bound_above_the_truth() -> None:
    stream = [f"u{i}" for i in range(2_000_000)]  # 2M distinct keys, each once
    stats = Stats(StatsConfig(), T0)
    now = feed(stats, stream)
    for window in ("all", "15m"):
        rows = stats.top("ip", 1000, window, now)
        assert rows, window  # no false negatives: candidates are listed, with their bounds
        for row in rows:
            assert row["approximate"] is True and "count" not in row, row
            assert row["lower"] <= 1 <= row["upper"], row
    report = stats.report("all", now)
    assert report["parsed"] == 2_000_000


def test_below_the_budget_counts_are_exact() -> None:
    stream = zipf_stream(400_000, 4096, 1.1, seed=3)  # at most 4096 = exact_keys distinct values
    truth = collections.Counter(stream)
    assert len(truth) <= StatsConfig().exact_keys
    stats = Stats(StatsConfig(), T0)
    now = feed(stats, stream, per_second=500)  # 500 distinct at most per second: exact seconds too
    for window in ("all", "15m"):
        rows = stats.top("ip", 50, window, now)
        assert [(r["value"], r["count"]) for r in rows] == true_top(truth, 50), window
        assert all(r.keys() == {"value", "count", "share"} for r in rows)
    assert stats.total.counts("ip").exact and stats.total.counts("ip").rows() == sorted(
        (Row(v, n, n) for v, n in truth.items()), key=lambda r: (-r.lower, r.value))


def test_the_budget_is_exact_at_its_limit_and_a_sketch_past_it() -> None:
    tally = Tally()
    tally.merge(Tally({f"k{i}": 1 for i in range(100)}), exact_keys=100, lg_size=6)
    assert tally.exact and len(tally) == 100
    tally.merge(Tally({"k100": 1}), exact_keys=100, lg_size=6)
    assert not tally.exact and tally.total() == 101 and tally.max_error() > 0
    assert all(r.lower <= 1 <= r.upper for r in tally.rows())
    zero = Tally()
    zero.merge(Tally({"a": 2}), exact_keys=0, lg_size=3)  # a budget of 0: always a sketch
    assert not zero.exact and zero.rows() == [Row("a", 2, 2)]  # that never purged: still exact bounds


def test_merging_is_exact_in_any_order_below_the_budget_and_survives_bytes() -> None:
    parts = [Tally({f"k{j}": i + j for j in range(i, i + 30)}) for i in range(20)]
    one, other = Tally(), Tally()
    for t in parts:
        one.merge(t, 1000, 8)
    for t in reversed(parts):
        other.merge(Tally.from_bytes(t.to_bytes()), 1000, 8)
    assert one.rows() == other.rows() and one.exact
    sketched = Tally()
    for t in parts:
        sketched.merge(t, 10, 8)
    back = Tally.from_bytes(sketched.to_bytes())
    assert not back.exact and back.rows() == sketched.rows()
    truth = collections.Counter[str]()
    for t in parts:
        truth.update(t.counts)
    assert all(r.lower <= truth[r.value] <= r.upper for r in back.rows())


@pytest.mark.parametrize(("key", "lowest", "highest"), [
    ("exact_keys", 0, 1_000_000), ("second_exact_keys", 0, 1_000_000), ("topk_lg_size", 3, 16),
    ("distinct_lg_k", 4, 16),
])
def test_budget_keys_are_range_checked(key: str, lowest: int, highest: int) -> None:
    for value in (lowest, highest):
        assert getattr(msgspec.convert({key: value}, StatsConfig), key) == value
    for value in (lowest - 1, highest + 1):
        with pytest.raises(msgspec.ValidationError, match=key):
            msgspec.convert({key: value}, StatsConfig)


def test_a_daemon_past_its_budget_marks_every_answer(start_server: Any) -> None:
    """TOP, `logtally top`, STATS and METRICS of a real daemon whose budget is 50 distinct values."""
    server = start_server("[stats]\nexact_keys = 50\nsecond_exact_keys = 50\ntopk_lg_size = 4\nsecond_lg_size = 4\n")
    # 10.0.0.1 sends 40 requests, 300 others one each, all in one second
    ips = ["10.0.0.1"] * 40 + [f"10.1.{i >> 8}.{i & 255}" for i in range(300)]
    send_tcp(server.address("tcp"), "".join(
        f'{ip} - - [30/Jan/2025:12:00:00 +0000] "GET /a HTTP/1.1" 200 5 "-" "curl"\n' for ip in ips).encode())
    assert server.wait_received(len(ips))["parsed"] == len(ips)
    top = server.command("TOP ip 5")["top"]
    assert top[0]["value"] == "10.0.0.1" and top[0]["lower"] <= 40 <= top[0]["upper"]
    assert all(row["approximate"] is True and "count" not in row for row in top)
    assert all(row["lower"] <= 1 for row in top[1:])
    assert server.command("TOP path 5")["top"] == [{"value": "/a", "count": 340, "share": 1.0}]  # one path: exact
    out = subprocess.run([sys.executable, "-m", "logtally", "--control", server.addresses["control"], "top", "ip"],
                         capture_output=True, timeout=60, cwd=ROOT, check=True).stdout.decode().splitlines()
    assert out[1].startswith("approximate") and out[4].split()[0] == "10.0.0.1" and "–" in out[4]
    report = server.stats()
    assert report["approximate"] == {} and report["distinct"]["ip"]["lower"] <= 301 <= report["distinct"]["ip"]["upper"]
    metrics = server.command("METRICS")["metrics"]
    assert metric(metrics, "logtally_top_approximate", field="ip") == 1
    assert metric(metrics, "logtally_top_approximate", field="path") == 0


def test_a_snapshot_of_the_old_bucket_format_is_set_aside(tmp_path: Any) -> None:
    """Buckets changed shape (tallies, distinct counts): the state file's version says so, and
    the store refuses an old file cleanly; a new one restores the same answers."""
    from logtallyd.detect.config import DetectConfig
    from logtallyd.persist.config import StateConfig
    from logtallyd.persist.snapshot import write_snapshot
    from logtallyd.persist.state import FILENAME, VERSION, StateStore

    assert VERSION == 2
    store = StateStore(StateConfig(directory=str(tmp_path)))
    write_snapshot(tmp_path / FILENAME, b"whatever version 1 wrote", 1)
    assert store.load(StatsConfig(), DetectConfig()) is None
    assert not (tmp_path / FILENAME).exists() and len(list(tmp_path.iterdir())) == 1  # set aside
    stats = Stats(StatsConfig(exact_keys=10), T0)
    now = feed(stats, [f"k{i % 30}" for i in range(3000)], per_second=300)
    restored = Stats.from_bytes(stats.to_bytes(), StatsConfig(exact_keys=10))
    for window in ("all", "1m"):
        rows = stats.top("ip", 5, window, now)
        assert len(rows) == 5 and restored.top("ip", 5, window, now) == rows
    assert not restored.total.counts("ip").exact  # 30 values > 10: a sketch, restored as one


def test_a_live_exact_bucket_merged_into_a_sketched_window_is_never_stale() -> None:
    """A hot second's exact tally is merged into each query's (sketched) window answer through
    the sketch it builds of itself; more lines into that second must reach the next query."""
    t0 = 1_700_000_040  # 40 s into a minute
    stats = Stats(StatsConfig(exact_keys=64, second_exact_keys=64), t0)

    def feed(second: int, counts: dict[str, int]) -> None:
        bucket = Bucket(lines=sum(counts.values()), tally={"ip": Tally(dict(counts))})
        partial = Partial(received=bucket.lines, parsed=bucket.lines, buckets={second: bucket})
        stats.merge(Partial.from_bytes(partial.to_bytes()), second)

    feed(t0 - 60, {f"10.0.0.{i}": 1 for i in range(200)})  # past the budget: the 5m answer is a sketch
    feed(t0, {"hot": 10})
    assert stats.top("ip", 1, "5m", t0)[0]["value"] == "hot"
    feed(t0, {"hot": 5000})
    (row,) = stats.top("ip", 1, "5m", t0)
    low, high = (row["count"], row["count"]) if "count" in row else (row["lower"], row["upper"])
    assert row["value"] == "hot" and low <= 5010 <= high
