"""Blur and occlusion scores against degradations of known strength, on real faces.

    python bench/quality.py [--data ../shared/data/fer2013/test] [--faces 1500]

Faces come from FER2013's PrivateTest half of the test split (the quality network was
trained on the PublicTest half; the train split in ../shared is blurred throughout, see
RESULTS.md). Blur: Gaussian sigma in {0, .5, 1, 1.5, 2, 3, 4, 5}; curate's score beside
scikit-image's ``blur_effect`` and cleanvision's blurry check on the same images.
Occlusion: each of the six occluder kinds at a uniform fraction in [0, 0.7], patches of
other photos taken from other test faces; the truth is the occluder's pixel mask.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._results import write_section  # noqa: E402
from curate.quality.degrade import OCCLUDER_KINDS, gaussian_blur, occlude  # noqa: E402
from curate.quality.net import load_default  # noqa: E402
from curate.quality.scores import score_faces  # noqa: E402
from curate.quality.train import load_faces  # noqa: E402

SIGMAS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0)


def _auroc(scores_sharp: np.ndarray, scores_blurry: np.ndarray) -> float:
    y = np.r_[np.zeros(len(scores_sharp)), np.ones(len(scores_blurry))]
    return float(roc_auc_score(y, np.r_[scores_sharp, scores_blurry]))


def _cleanvision_blurriness(images: np.ndarray) -> np.ndarray:
    """cleanvision's own blurry check (Imagelab over a folder); returns 1 - blurry_score (higher = blurrier)."""
    from cleanvision import Imagelab

    with tempfile.TemporaryDirectory() as tmp:
        for i, img in enumerate(images):
            cv2.imwrite(f"{tmp}/{i:06d}.png", img)
        lab = Imagelab(data_path=tmp)
        lab.find_issues({"blurry": {}}, verbose=False)
        issues = lab.issues.sort_index()
        order = np.argsort([Path(p).name for p in issues.index])
        return 1.0 - issues["blurry_score"].to_numpy()[order]


def bench_blur(net, faces: np.ndarray, with_cleanvision: bool) -> dict:  # noqa: ANN001
    from skimage.measure import blur_effect

    images, sigmas = [], []
    for s in SIGMAS:
        for f in faces:
            images.append(gaussian_blur(f, s))
            sigmas.append(s)
    images_np, sigmas_np = np.stack(images), np.array(sigmas)
    t0 = time.perf_counter()
    ours, _ = score_faces(net, images_np)
    ours_rate = len(images_np) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    skimage_scores = np.array([blur_effect(im) for im in images_np])
    skimage_rate = len(images_np) / (time.perf_counter() - t0)
    sharp, blurry = sigmas_np == 0, sigmas_np >= 1.5
    out = {
        "faces": len(faces),
        "images": len(images_np),
        "curate": {
            "spearman_vs_sigma": float(spearmanr(ours, sigmas_np).correlation),
            "auroc_sharp_vs_sigma_ge_1.5": _auroc(ours[sharp], ours[blurry]),
            "undegraded_removed_at_0.3": float((ours[sharp] > 0.3).mean()),
            "removed_at_0.3_by_sigma": {str(s): float((ours[sigmas_np == s] > 0.3).mean()) for s in SIGMAS},
            "median_by_sigma": {str(s): float(np.median(ours[sigmas_np == s])) for s in SIGMAS},
            "images_per_s": ours_rate,
        },
        "skimage_blur_effect": {
            "spearman_vs_sigma": float(spearmanr(skimage_scores, sigmas_np).correlation),
            "auroc_sharp_vs_sigma_ge_1.5": _auroc(skimage_scores[sharp], skimage_scores[blurry]),
            "undegraded_above_0.3": float((skimage_scores[sharp] > 0.3).mean()),
            "images_per_s": skimage_rate,
        },
    }
    if with_cleanvision:
        cv_scores = _cleanvision_blurriness(images_np)
        out["cleanvision_blurry"] = {
            "spearman_vs_sigma": float(spearmanr(cv_scores, sigmas_np).correlation),
            "auroc_sharp_vs_sigma_ge_1.5": _auroc(cv_scores[sharp], cv_scores[blurry]),
        }
    return out


def bench_occlusion(net, faces: np.ndarray, donors: np.ndarray, seed: int) -> dict:  # noqa: ANN001
    rng = np.random.default_rng(seed)
    images, truth, kinds = [], [], []
    for f in faces:
        images.append(f)
        truth.append(0.0)
        kinds.append("none")
    for kind in OCCLUDER_KINDS:
        for f in faces:
            occ = occlude(f, kind, float(rng.uniform(0.0, 0.7)), rng, donors)
            images.append(occ.image)
            truth.append(occ.fraction)
            kinds.append(kind)
    _, pred = score_faces(net, np.stack(images))
    truth_np, kinds_np = np.array(truth), np.array(kinds)
    out: dict = {"faces": len(faces), "images": len(images)}

    def summary(mask: np.ndarray) -> dict:
        t, p = truth_np[mask], pred[mask]
        return {"mae": float(np.abs(p - t).mean()), "decision_accuracy_at_0.4": float(((p > 0.4) == (t > 0.4)).mean()), "n": int(mask.sum())}

    degraded = kinds_np != "none"
    out["all_occluded"] = summary(degraded)
    out["by_kind"] = {k: summary(kinds_np == k) for k in OCCLUDER_KINDS}
    out["undegraded_removed_at_0.4"] = float((pred[~degraded] > 0.4).mean())
    out["undegraded_mean_score"] = float(pred[~degraded].mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/fer2013/test")
    parser.add_argument("--usage", default="PrivateTest", help="Faces whose name starts with this ('' = all).")
    parser.add_argument("--faces", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-cleanvision", action="store_true")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"error: {args.data}: FER2013 test faces not found (pass --data)")
    import torch

    torch.set_num_threads(2)
    faces_all = load_faces(args.data, seed=args.seed, usage=args.usage or None)
    faces, donors = faces_all[: args.faces], faces_all[args.faces : args.faces + 500]
    net = load_default()
    blur = bench_blur(net, faces, not args.no_cleanvision)
    occ = bench_occlusion(net, faces, donors, args.seed)

    c, sk = blur["curate"], blur["skimage_blur_effect"]
    cv = blur.get("cleanvision_blurry", {})
    lines = [
        "## Quality scores (bench/quality.py)",
        "",
        f"Real faces: {args.faces} FER2013 {args.usage or 'test'} faces (the quality net trained on PublicTest only), degraded with known strength.",
        "",
        "### Blur (Gaussian sigma 0-5 px at 48 px face size; score 0.3 is meant to be sigma 1.5)",
        "",
        "| metric | goal | curate blur | skimage blur_effect | cleanvision blurry |",
        "|---|---|---|---|---|",
        f"| Spearman vs sigma | >= 0.9 | {c['spearman_vs_sigma']:.3f} | {sk['spearman_vs_sigma']:.3f} | {cv.get('spearman_vs_sigma', float('nan')):.3f} |",
        f"| AUROC sharp vs sigma >= 1.5 | >= 0.95 | {c['auroc_sharp_vs_sigma_ge_1.5']:.3f} | {sk['auroc_sharp_vs_sigma_ge_1.5']:.3f} | {cv.get('auroc_sharp_vs_sigma_ge_1.5', float('nan')):.3f} |",
        f"| undegraded faces removed at 0.3 | <= 5 % | {100 * c['undegraded_removed_at_0.3']:.1f} % | {100 * sk['undegraded_above_0.3']:.1f} % (raw > 0.3) | - |",
        f"| images/s (2 cores) | | {c['images_per_s']:.0f} | {sk['images_per_s']:.0f} | |",
        "",
        "Share removed at blur > 0.3, by applied sigma: " + ", ".join(f"sigma {s}: {100 * v:.0f} %" for s, v in c["removed_at_0.3_by_sigma"].items()),
        "",
        "### Occlusion (true fraction uniform in 0-0.7 of the face; remove above 0.4)",
        "",
        "| occluder | MAE (goal <= 0.10) | accuracy of > 0.4 decision (goal >= 90 %) |",
        "|---|---|---|",
        *[f"| {k} | {v['mae']:.3f} | {100 * v['decision_accuracy_at_0.4']:.1f} % |" for k, v in occ["by_kind"].items()],
        f"| **all kinds** | **{occ['all_occluded']['mae']:.3f}** | **{100 * occ['all_occluded']['decision_accuracy_at_0.4']:.1f} %** |",
        "",
        f"Undegraded faces removed at occlusion > 0.4: {100 * occ['undegraded_removed_at_0.4']:.1f} % (goal <= 5 %); "
        f"mean score of undegraded faces {occ['undegraded_mean_score']:.3f}.",
        "",
        "Caveat: the occluders are synthetic (the six kinds the net was trained on, fresh draws on unseen faces); "
        "real hands, hair and scarves are not measured here.",
    ]
    write_section("quality", "\n".join(lines), {"blur": blur, "occlusion": occ, "args": vars(args) | {"data": str(args.data)}})


if __name__ == "__main__":
    main()
