"""Thin wrappers over Apache DataSketches: top-K (frequent items), quantiles (KLL) and distinct
counts (HLL)."""
# Workers ship a batch's values exactly (bounded by the batch); the main process sketches them
# once (`Bucket.settle`) and merges the sketches into time buckets. Both sketch kinds merge associatively and
# commutatively, and their size is bounded by their parameter, whatever the cardinality. Sketch
# objects are created and merged only through these functions, so a swap of library touches one
# file.
from __future__ import annotations

import collections
import importlib.util
import math
import sys
from typing import Any, Iterable, Mapping, Sequence


def lazy_module(name: str) -> Any:
    """Module `name`, executed on its first attribute access (importlib's LazyLoader recipe)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None, name
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


# A pool worker counts a batch exactly and leaves the sketching to the main process
# (`Bucket.settle`), so it never touches datasketches, nor the numpy that loads with it (~17 MB
# of every process that imports them).
ds = lazy_module("datasketches")

TopK = Any  # ds.frequent_strings_sketch
Quantiles = Any  # ds.kll_floats_sketch
Distinct = Any  # ds.hll_union: a union is the mergeable form; single sketches only cross the pipe

_HLL_STD = 2  # the bounds given with a distinct count: two standard deviations (~95%)


def hll_type() -> Any:
    """HLL_8: the fastest to update and merge; 2**lg_k bytes at most."""
    return ds.tgt_hll_type.HLL_8


def new_topk(lg_size: int) -> TopK:
    """A frequent-strings sketch with a map of 2**lg_size slots (tracks 0.75 * that many items)."""
    return ds.frequent_strings_sketch(lg_size)


def topk_from_counts(counts: Mapping[str, int], lg_size: int) -> TopK:
    sk = ds.frequent_strings_sketch(lg_size)
    update = sk.update
    for value, n in counts.items():
        update(value, n)
    return sk


def topk_items(sk: TopK) -> list[tuple[str, int, int, int]]:
    """(value, estimate, lower bound, upper bound), most frequent first, ties by value."""
    # NO_FALSE_NEGATIVES lists every tracked item whose upper bound exceeds the sketch's maximum
    # error, so no value that could be heavier than that error is left out (NO_FALSE_POSITIVES
    # would drop the candidates whose lower bound is small, which on a flat stream is every
    # value). Every row carries its guaranteed [lower, upper] bounds.
    items = sk.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_NEGATIVES)
    items.sort(key=lambda it: (-it[1], it[0]))
    return items


def topk_bounds(sk: TopK, value: str) -> tuple[int, int]:
    """The guaranteed (lower, upper) bounds of the count of `value` (0, max error if untracked)."""
    return sk.get_lower_bound(value), sk.get_upper_bound(value)


def topk_update(sk: TopK, counts: Mapping[str, int]) -> None:
    update = sk.update
    for value, n in counts.items():
        update(value, n)


def topk_error_bound(lg_size: int, total_weight: int) -> float:
    """A-priori bound on the over/under-estimate of any count in a sketch of this size."""
    return ds.frequent_strings_sketch.get_apriori_error(lg_size, total_weight)


def new_quantiles(k: int) -> Quantiles:
    return ds.kll_floats_sketch(k)


def quantiles_from_values(values: Sequence[float], k: int) -> Quantiles:
    import numpy as np  # a datasketches dependency, loaded with it

    sk = ds.kll_floats_sketch(k)
    sk.update(np.asarray(values, dtype=np.float32))  # one C++ call for the whole batch
    return sk


def quantile_rank_error(k: int) -> float:
    """Normalized rank error of a single quantile query (99% confidence), e.g. 0.0133 for k=200."""
    return ds.kll_floats_sketch.get_normalized_rank_error(k, False)


def quantiles_of(sk: Quantiles, ranks: Iterable[float]) -> list[float]:
    return [sk.get_quantile(r, True) for r in ranks]  # inclusive: nearest-rank percentiles


def distinct_rel_err(lg_k: int) -> float:
    """Relative standard error of a merged distinct count (one standard deviation), about
    1.04 / sqrt(2**lg_k): 1.6% at lg_k 12."""
    return abs(ds.hll_sketch.get_rel_err(True, True, lg_k, 1))


def new_distinct(lg_k: int) -> Distinct:
    return ds.hll_union(lg_k)


def distinct_bytes_of(values: Iterable[str], lg_k: int) -> bytes:
    """The compact HLL sketch of distinct `values` (each distinct value given once is cheapest)."""
    sk = ds.hll_sketch(lg_k, hll_type())
    collections.deque(map(sk.update, values), maxlen=0)  # one C-level loop
    return sk.serialize_compact()


def distinct_merge(union: Distinct, data: bytes) -> None:
    union.update(ds.hll_sketch.deserialize(data))


def distinct_from_bytes(data: bytes, lg_k: int) -> Distinct:
    union = ds.hll_union(lg_k)
    union.update(ds.hll_sketch.deserialize(data))
    return union


def distinct_to_bytes(union: Distinct) -> bytes:
    return union.get_result(hll_type()).serialize_compact()


def distinct_merge_union(union: Distinct, other: Distinct) -> None:
    union.update(other.get_result(hll_type()))


def distinct_estimate(union: Distinct | None) -> tuple[int, int, int]:
    """(estimate, lower, upper) as whole numbers; the bounds are two standard deviations. A
    count is whole, so a bound of 2.0002 means at most 2 (and 1.9998 at least 2)."""
    if union is None:
        return 0, 0, 0
    # A HIP estimate depends on the order the values came in, so on how batches were cut. A
    # union fed a dense sketch it already holds marks itself out of order and estimates from
    # its registers alone (composite estimator): one set, one answer, however it was merged.
    result = union.get_result(hll_type())
    settled = ds.hll_union(result.lg_config_k)
    settled.update(result)
    settled.update(result)
    estimate = round(settled.get_estimate())
    lower = min(math.ceil(settled.get_lower_bound(_HLL_STD)), estimate)
    upper = max(math.floor(settled.get_upper_bound(_HLL_STD)), estimate)
    return estimate, lower, upper


def to_bytes(sk: TopK | Quantiles) -> bytes:
    return sk.serialize()


def topk_from_bytes(data: bytes) -> TopK:
    return ds.frequent_strings_sketch.deserialize(data)


def quantiles_from_bytes(data: bytes) -> Quantiles:
    return ds.kll_floats_sketch.deserialize(data)
