"""Train FaceQualityNet on synthetic degradations of real faces (reproducible; CPU, ~13 minutes).

    python -m curate.quality.train --data ../shared/data/fer2013/test --usage PublicTest

Which faces: the net must learn what an *undegraded* face looks like, so it trains on
FER2013's PublicTest faces and bench/quality.py evaluates on the disjoint PrivateTest
faces. Not the train split: every one of its 28,709 faces in ../shared is blurred
(about Gaussian sigma 3 px, median Laplacian variance 6 vs 2,135 for test), and a net
trained on them learns that blur is normal. Each
training face is, at random: left clean, blurred (sigma 0-5.5 px), occluded (one of
the six occluder kinds, 2-80 % of the face), or both. Targets are exact: the sigma
applied and the occluder's pixel mask.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import cv2
import numpy as np

from curate.quality.degrade import gaussian_blur, random_occlusion

__all__ = ["load_faces", "make_training_set", "train"]


def load_faces(root: Path, limit: int | None = None, seed: int = 0, usage: str | None = None) -> np.ndarray:
    """``root/<class>/*.jpg|png`` faces (names starting with ``usage`` if given) as uint8 (N, 48, 48), shuffled reproducibly."""
    from curate.quality.net import FACE_SIZE

    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"} and (usage is None or p.name.startswith(usage)))
    rng = np.random.default_rng(seed)
    rng.shuffle(paths)
    paths = paths[:limit] if limit else paths
    faces = np.empty((len(paths), FACE_SIZE, FACE_SIZE), np.uint8)
    for i, p in enumerate(paths):
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        faces[i] = cv2.resize(img, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA) if img.shape != faces.shape[1:] else img
    return faces


def _jitter(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = face.astype(np.float32)
    out = (out - out.mean()) * rng.uniform(0.7, 1.3) + out.mean() + rng.uniform(-25, 25)
    out = np.clip(out, 0, 255).astype(np.uint8)
    return np.fliplr(out).copy() if rng.random() < 0.5 else out


def make_training_set(faces: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images uint8 (n,48,48), masks float16 (n,24,24) hidden fraction per cell, sigma float32 (n,))."""
    from curate.quality.net import QualityNet

    rng = np.random.default_rng(seed)
    size = faces.shape[1]
    m = QualityNet.MASK_SIZE
    images = np.empty((n, size, size), np.uint8)
    masks = np.zeros((n, m, m), np.float16)
    sigmas = np.zeros(n, np.float32)
    for i in range(n):
        face = _jitter(faces[rng.integers(len(faces))], rng)
        scenario = rng.random()
        mask = None
        if 0.50 <= scenario:  # occluded (0.50-0.85 alone, 0.85-1.0 with blur)
            occ = random_occlusion(face, rng, donors=faces[rng.integers(len(faces), size=8)], max_fraction=0.8)
            face, mask = occ.image, occ.mask
        if 0.15 <= scenario < 0.50 or scenario >= 0.85:  # blurred
            sigma = float(rng.uniform(0, 2.5) if rng.random() < 0.5 else rng.uniform(0, 5.5))
            face = gaussian_blur(face, sigma)
            sigmas[i] = sigma
        if rng.random() < 0.3:  # real images carry JPEG artifacts
            ok, buf = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 96))])
            face = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
        images[i] = face
        if mask is not None:
            masks[i] = cv2.resize(mask.astype(np.float32), (m, m), interpolation=cv2.INTER_AREA)
    return images, masks, sigmas


def train(data: Path, out: Path, samples: int, epochs: int, seed: int, threads: int, batch: int = 256, usage: str | None = None) -> dict:
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file

    from curate.quality.net import SIGMA_MAX, QualityNet, normalize

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    t0 = time.time()
    faces = load_faces(data, seed=seed, usage=usage)
    images, masks, sigmas = make_training_set(faces, samples, seed)
    n_val = max(512, samples // 40)
    print(f"generated {samples} degraded faces from {len(faces)} in {time.time() - t0:.0f}s", flush=True)

    x_all = normalize(images)
    y_mask = torch.from_numpy(masks.astype(np.float32)).unsqueeze(1)
    y_blur = torch.from_numpy(np.minimum(sigmas, SIGMA_MAX) / SIGMA_MAX)
    train_idx = torch.arange(n_val, samples)
    net = QualityNet().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * (len(train_idx) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    history = []
    for epoch in range(epochs):
        net.train()
        perm = train_idx[torch.randperm(len(train_idx))]
        running = 0.0
        for step in range(len(perm) // batch):
            idx = perm[step * batch : (step + 1) * batch]
            logits, blur = net(x_all[idx].contiguous(memory_format=torch.channels_last))
            target = y_mask[idx]
            frac_pred = torch.sigmoid(logits).mean(dim=(1, 2, 3))
            loss = (
                F.binary_cross_entropy_with_logits(logits, target)
                + 2.0 * F.l1_loss(frac_pred, target.mean(dim=(1, 2, 3)))
                + 3.0 * F.smooth_l1_loss(blur, y_blur[idx], beta=0.05)
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item()
        val = _evaluate(net, x_all[:n_val], y_mask[:n_val], y_blur[:n_val])
        history.append({"epoch": epoch + 1, "train_loss": running / max(1, len(perm) // batch), **val, "seconds": round(time.time() - t0)})
        print(json.dumps(history[-1]), flush=True)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    tmp.replace(out)
    sidecar = {
        "model": "FaceQualityNet",
        "trained_on": str(data),
        "usage": usage,
        "faces": int(len(faces)),
        "samples": samples,
        "epochs": epochs,
        "seed": seed,
        "history": history,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
    }
    out.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return sidecar


def _evaluate(net, x, y_mask, y_blur) -> dict:  # noqa: ANN001
    import torch

    from curate.quality.net import SIGMA_MAX

    net.eval()
    with torch.inference_mode():
        logits, blur = net(x.contiguous(memory_format=torch.channels_last))
    frac_err = (torch.sigmoid(logits).mean(dim=(1, 2, 3)) - y_mask.mean(dim=(1, 2, 3))).abs().mean().item()
    sigma_err = ((blur - y_blur).abs().mean() * SIGMA_MAX).item()
    return {"val_occlusion_mae": round(frac_err, 4), "val_sigma_mae": round(sigma_err, 3)}


def main() -> None:
    from curate.quality.net import WEIGHTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared/data/fer2013/test")
    parser.add_argument("--usage", default="PublicTest", help="Only faces whose file name starts with this ('' = all).")
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument("--samples", type=int, default=120_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    train(args.data, args.out, args.samples, args.epochs, args.seed, args.threads, usage=args.usage or None)


if __name__ == "__main__":
    main()
