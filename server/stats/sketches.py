"""Thin wrappers over Apache DataSketches: top-K (frequent items) and quantiles (KLL)."""
# Workers fold a batch's values into sketches and ship them as bytes; the main process
# deserializes and merges them into time buckets. Both sketch kinds merge associatively and
# commutatively, and their size is bounded by their parameter, whatever the cardinality. Sketch
# objects are created and merged only through these functions, so a swap of library touches one
# file.
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import datasketches as ds
import numpy as np  # a datasketches dependency; batch updates of KLL take arrays

TopK = ds.frequent_strings_sketch
Quantiles = ds.kll_floats_sketch

# Error model of get_frequent_items: NO_FALSE_NEGATIVES lists every tracked item whose upper
# bound exceeds the sketch's maximum error, so a top-N table is never empty under high
# cardinality; each row carries its bounds. A sketch that never purged is exact (bounds equal).
_NO_FALSE_NEGATIVES = ds.frequent_items_error_type.NO_FALSE_NEGATIVES


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
    items = sk.get_frequent_items(_NO_FALSE_NEGATIVES)
    items.sort(key=lambda it: (-it[1], it[0]))
    return items


def topk_error_bound(lg_size: int, total_weight: int) -> float:
    """A-priori bound on the over/under-estimate of any count in a sketch of this size."""
    return ds.frequent_strings_sketch.get_apriori_error(lg_size, total_weight)


def new_quantiles(k: int) -> Quantiles:
    return ds.kll_floats_sketch(k)


def quantiles_from_values(values: Sequence[float], k: int) -> Quantiles:
    sk = ds.kll_floats_sketch(k)
    sk.update(np.asarray(values, dtype=np.float32))  # one C++ call for the whole batch
    return sk


def quantile_rank_error(k: int) -> float:
    """Normalized rank error of a single quantile query (99% confidence), e.g. 0.0133 for k=200."""
    return ds.kll_floats_sketch.get_normalized_rank_error(k, False)


def quantiles_of(sk: Quantiles, ranks: Iterable[float]) -> list[float]:
    return [sk.get_quantile(r, True) for r in ranks]  # inclusive: nearest-rank percentiles


def to_bytes(sk: TopK | Quantiles) -> bytes:
    return sk.serialize()


def topk_from_bytes(data: bytes) -> TopK:
    return ds.frequent_strings_sketch.deserialize(data)


def quantiles_from_bytes(data: bytes) -> Quantiles:
    return ds.kll_floats_sketch.deserialize(data)
