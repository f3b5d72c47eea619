"""Exact (content hash) and near (perceptual hash) duplicates, within and across splits.

Near duplicates use multi-index hashing: with a Hamming radius d, two 64-bit hashes
within d bits agree exactly on at least one of d + 1 bands (pigeonhole), so only
pairs sharing a band value are compared. That keeps it near-linear on 400k images
where an all-pairs comparison would not finish.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["DuplicateInfo", "near_pairs", "near_links", "find_duplicates", "SPLIT_ORDER"]

SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}
_SMALL_BUCKET = 64  # band buckets up to this size are paired vectorised; larger ones one by one


@dataclass(frozen=True)
class DuplicateInfo:
    group: int
    canonical: int  # index of the group's kept member
    kind: str  # "canonical", "exact" or "near"
    cross_split: bool


def near_pairs(hashes: np.ndarray, max_distance: int) -> np.ndarray:
    """All index pairs (i < j) whose 64-bit hashes differ in at most ``max_distance`` bits, shape (K, 2)."""
    h = np.asarray(hashes, dtype=np.uint64)
    if len(h) < 2 or max_distance < 0:
        return np.empty((0, 2), np.int64)
    bands = max_distance + 1
    edges = np.linspace(0, 64, bands + 1).astype(int)
    found: list[np.ndarray] = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        key = (h >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1)
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
        sizes = np.diff(np.r_[starts, len(order)])
        small = (sizes > 1) & (sizes <= _SMALL_BUCKET)
        # Small buckets all at once: the k-th neighbour in sorted order, for k = 1 .. the largest small bucket
        # (a Python loop over 23,000 buckets of 2-4 faces was 2 of the 5 s that duplicate marking took on FER2013).
        in_small = np.repeat(small, sizes)
        run_end = np.repeat(starts + sizes, sizes)
        positions = np.flatnonzero(in_small)
        for k in range(1, int(sizes[small].max(initial=1))):
            positions = positions[positions + k < run_end[positions]]
            a, b = order[positions], order[positions + k]
            close = np.bitwise_count(h[a] ^ h[b]) <= max_distance
            if close.any():
                found.append(np.stack([np.minimum(a, b)[close], np.maximum(a, b)[close]], 1))
        for start, size in zip(starts[sizes > _SMALL_BUCKET], sizes[sizes > _SMALL_BUCKET]):  # few, but each m^2 / 2
            members = order[start : start + size]
            ii, jj = np.triu_indices(size, 1)
            a, b = members[ii], members[jj]
            close = np.bitwise_count(h[a] ^ h[b]) <= max_distance
            if close.any():
                found.append(np.stack([np.minimum(a, b)[close], np.maximum(a, b)[close]], 1))
    if not found:
        return np.empty((0, 2), np.int64)
    return np.unique(np.concatenate(found), axis=0)


def _chain_equal(keys: np.ndarray) -> np.ndarray:
    """Pairs (i, j) that chain every run of equal keys (i-j, j-k): n - 1 rows at most, not m^2 / 2 per run."""
    order = np.argsort(keys, kind="stable")
    same = keys[order][1:] == keys[order][:-1]
    return np.stack([order[:-1][same], order[1:][same]], 1).astype(np.int64)


def near_links(hashes: np.ndarray, max_distance: int) -> np.ndarray:
    """Pairs that join the same groups as ``near_pairs`` with at most n - 1 + (pairs of distinct values) rows.

    Equal hashes are chained instead of paired all-to-all, and distinct values within the radius are
    linked through one member each. Real datasets hold large runs of one hash (exact copies, blank or
    uniform frames hash alike): all pairs of a run of m would cost m^2 / 2 rows of memory."""
    h = np.asarray(hashes, dtype=np.uint64)
    if len(h) < 2 or max_distance < 0:
        return np.empty((0, 2), np.int64)
    values, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    across = first[near_pairs(values, max_distance)].reshape(-1, 2)
    return np.concatenate([_chain_equal(inverse), across]).astype(np.int64)


def _union_find(n: int, pairs: np.ndarray) -> np.ndarray:
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([root(i) for i in range(n)])


def find_duplicates(
    content_hashes: Sequence[str],
    phashes: Sequence[int],
    splits: Sequence[str | None],
    paths: Sequence[str],
    max_distance: int = 4,
) -> dict[int, DuplicateInfo]:
    """Index -> DuplicateInfo for every sample that has at least one duplicate.

    The canonical member of a group is the one a trainer should keep: train before val
    before test, then the smallest path, so the choice is stable across runs.
    """
    n = len(content_hashes)
    if n == 0:
        return {}
    _, exact_ids = np.unique(np.asarray(content_hashes), return_inverse=True)
    pairs = np.concatenate([_chain_equal(exact_ids), near_links(np.array([int(p) for p in phashes], dtype=np.uint64), max_distance)])
    if len(pairs) == 0:
        return {}
    roots = _union_find(n, pairs)
    members: dict[int, list[int]] = {}
    for i in np.unique(pairs):  # every sample in some pair: the links join exactly the groups all pairs would
        members.setdefault(int(roots[i]), []).append(int(i))
    out: dict[int, DuplicateInfo] = {}
    for group_id, (_, idx) in enumerate(sorted(members.items())):
        idx.sort(key=lambda i: (SPLIT_ORDER.get(splits[i] or "", 3), paths[i]))
        keep = idx[0]
        cross = len({splits[i] for i in idx}) > 1
        for i in idx:
            kind = "canonical" if i == keep else "exact" if content_hashes[i] == content_hashes[keep] else "near"
            out[i] = DuplicateInfo(group_id, keep, kind, cross)
    return out
