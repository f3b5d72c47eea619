"""Quality scores, degradations, thresholds and duplicate finding as pure functions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from curate.quality.degrade import OCCLUDER_KINDS, gaussian_blur, occlude
from curate.quality.duplicates import _union_find, find_duplicates, near_links, near_pairs
from curate.quality.scores import quality_reasons
from tests import builders


@pytest.fixture(scope="module")
def net():  # noqa: ANN201
    import torch

    from curate.quality.net import load_default

    torch.set_num_threads(1)
    return load_default()


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return np.stack([builders.face(seed) for seed in range(24)])


def test_blur_score_rises_with_sigma(net, faces: np.ndarray) -> None:  # noqa: ANN001
    from curate.quality.scores import score_faces

    means = [float(score_faces(net, np.stack([gaussian_blur(f, s) for f in faces]))[0].mean()) for s in (0, 1.5, 3, 5)]
    assert means == sorted(means), means
    assert means[-1] - means[0] > 0.4, means
    assert all(0 <= m <= 1 for m in means)


def test_occlusion_score_tracks_hidden_fraction(net, faces: np.ndarray) -> None:  # noqa: ANN001
    from curate.quality.scores import score_faces

    rng = np.random.default_rng(0)
    clean = score_faces(net, faces)[1]
    half = [occlude(f, "solid", 0.5, rng) for f in faces]
    hidden = score_faces(net, np.stack([o.image for o in half]))[1]
    truth = np.array([o.fraction for o in half])
    assert clean.mean() < 0.2, clean.mean()
    assert np.abs(hidden - truth).mean() < 0.2, (hidden.mean(), truth.mean())


def test_onnx_runtime_scores_equal_the_network_s_own_on_blurred_and_occluded_faces(net, faces: np.ndarray) -> None:  # noqa: ANN001
    """Ingest scores with ONNX Runtime (faster); the blur and occlusion a face gets must not depend on that."""
    from curate.ingest import worker
    from curate.quality.net import OnnxQualityNet, for_cpu_inference
    from curate.quality.scores import score_faces

    rng = np.random.default_rng(2)
    varied = np.stack([*faces, *(gaussian_blur(f, 2.0) for f in faces), *(occlude(f, "solid", 0.4, rng).image for f in faces)])
    fast = for_cpu_inference(net)
    assert isinstance(fast, OnnxQualityNet)
    for a, b in zip(score_faces(net, varied), score_faces(fast, varied)):
        assert a.std() > 0.01 and np.abs(a - b).max() < 1e-4
    worker.init_worker()
    assert isinstance(worker._net, OnnxQualityNet)  # what ingest's workers and Ray actors run


@pytest.mark.parametrize("kind", OCCLUDER_KINDS)
def test_occluders_hide_the_fraction_asked(kind: str) -> None:
    rng = np.random.default_rng(1)
    img = builders.face(3)
    donors = [builders.face(4), builders.face(5)]
    for target in (0.1, 0.3, 0.6):
        occ = occlude(img, kind, target, rng, donors)
        assert abs(occ.fraction - target) < 0.08, (kind, target, occ.fraction)
        assert (occ.image[~occ.mask] == img[~occ.mask]).mean() > 0.9  # outside the occluder the face is intact
    assert occlude(img, kind, 0.0, rng, donors).fraction == 0.0


def test_thresholds_are_strictly_greater() -> None:
    assert quality_reasons(0.3, 0.4, 0.3, 0.4) == []
    assert quality_reasons(0.31, 0.41, 0.3, 0.4) == ["blur", "occlusion"]
    assert quality_reasons(None, 0.9, 0.3, 0.4) == ["occlusion"]


def test_near_pairs_matches_brute_force() -> None:
    rng = np.random.default_rng(2)
    base = rng.integers(0, 2**63, 300, dtype=np.int64).astype(np.uint64)
    planted = base[:40] ^ (np.uint64(1) << rng.integers(0, 64, 40).astype(np.uint64))  # one bit away
    # 80 hashes that share their low 32 bits: buckets above the vectorised size limit, paired one by one, and the
    # same hashes a few bits apart in the high half, so that pairs come out of both paths
    crowd = (rng.integers(0, 2**31, 80, dtype=np.int64).astype(np.uint64) << np.uint64(32)) | np.uint64(0xDEADBEEF)
    crowd[40:] = crowd[:40] ^ (np.uint64(3) << np.uint64(40))
    hashes = np.concatenate([base, planted, crowd])
    for d in (0, 1, 3, 8):
        fast = {tuple(p) for p in near_pairs(hashes, d).tolist()}
        brute = {(i, j) for i, j in itertools.combinations(range(len(hashes)), 2) if bin(int(hashes[i] ^ hashes[j])).count("1") <= d}
        assert fast == brute, d
    assert len(near_pairs(hashes, 1)) >= 40


def test_near_links_join_the_same_groups_as_all_pairs_in_linear_rows() -> None:
    """Large runs of one hash (copies, blank frames) must not cost m^2 / 2 pairs: links are chained."""
    rng = np.random.default_rng(3)
    base = rng.integers(0, 2**63, 200, dtype=np.int64).astype(np.uint64)
    near = base[:30] ^ (np.uint64(1) << rng.integers(0, 64, 30).astype(np.uint64))
    blank = np.full(600, base[5])  # one value 600 times (180k pairs), one bit from near[5]
    hashes = rng.permutation(np.concatenate([base, near, blank]))

    def groups(pairs: np.ndarray) -> set[frozenset[int]]:
        roots = _union_find(len(hashes), pairs)
        return {frozenset(np.flatnonzero(roots == roots[i]).tolist()) for i in np.unique(pairs)}

    for d in (0, 2):
        pairs, links = near_pairs(hashes, d), near_links(hashes, d)
        assert groups(links) == groups(pairs), d
        assert len(links) < len(hashes) <= len(pairs) / 100, (d, len(links), len(pairs))


def test_find_duplicates_keeps_train_copy_and_flags_leakage() -> None:
    hashes = ["a", "a", "b", "c"]
    phashes = [0b1111, 0b1111, 0b1110, 2**62]
    splits = ["test", "train", "val", "train"]
    paths = ["t/x.jpg", "tr/x.jpg", "v/y.jpg", "tr/z.jpg"]
    found = find_duplicates(hashes, phashes, splits, paths, max_distance=1)
    assert set(found) == {0, 1, 2}
    assert found[1].kind == "canonical" and found[0].kind == "exact" and found[2].kind == "near"
    assert all(info.canonical == 1 and info.cross_split for info in found.values())
    assert find_duplicates(hashes, phashes, splits, paths, max_distance=-1).keys() == {0, 1}
