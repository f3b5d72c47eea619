"""ONNX export checked against torch, and INT8 static quantization with its size and accuracy change."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from curate.models.manifest import Row

__all__ = ["export_onnx", "onnx_logits", "latency_ms"]


def _batch(rows: Sequence[Row], side: dict[str, Any]) -> np.ndarray:
    import torch

    from curate.models.preprocess import Preprocess, eval_transform, load_face, to_model_input

    t = eval_transform(Preprocess.from_dict(side["preprocess"]))
    return to_model_input(torch.stack([t(load_face(r.path, r.box)) for r in rows])).contiguous().numpy()


def _session(path: Path, threads: int = 0):  # noqa: ANN202 - onnxruntime.InferenceSession
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = opts.inter_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_logits(path: Path, x: np.ndarray, batch: int = 64) -> np.ndarray:
    sess = _session(path)
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)])


def latency_ms(path: Path, x: np.ndarray, faces: int = 200) -> float:
    """Milliseconds per face on one core, one face at a time: what a device serving one camera pays.

    The median over ``faces`` single-face runs after a warm-up, so one slow run (a page fault, another process)
    does not decide the figure."""
    import time

    sess = _session(path, threads=1)
    name = sess.get_inputs()[0].name
    times = []
    for i in range(faces + 10):
        face = x[i % len(x)][None]
        t0 = time.perf_counter()
        sess.run(None, {name: face})
        if i >= 10:
            times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def export_onnx(checkpoint: Path, out: Path | None = None, int8: bool = False, rows: Sequence[Row] = (), seed: int = 0,
                check_limit: int = 512, split: str | None = None) -> dict[str, Any]:
    """Export; verify against torch on real rows (or random inputs); optionally quantize and measure the change.

    The first ``check_limit`` rows check the export against torch and calibrate the INT8 model; accuracy is measured
    on every row given (``split`` names them in the summary), because an accuracy line that reads 512 faces while
    the retrain line reads another split's thousands made two figures for one checkpoint that did not agree
    (issue 39). The exported graph is the bare network: no mirror-image averaging, which the torch figures include."""
    import torch

    from curate.models.checkpoint import load_checkpoint

    model, side = load_checkpoint(checkpoint)
    from curate.models.preprocess import Preprocess

    size = Preprocess.from_dict(side["preprocess"]).input_size  # the centre window for a model trained on crops
    out = out or checkpoint.with_suffix(".onnx")
    tmp = out.with_name(f".{out.name}.tmp")
    example = torch.randn(2, 3, size, size)
    torch.onnx.export(model, (example,), str(tmp), input_names=["image"], output_names=["logits"], opset_version=17,
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    tmp.replace(out)
    rng = np.random.default_rng(seed)
    faces = _batch(rows, side) if rows else rng.standard_normal((32, 3, size, size)).astype(np.float32)
    x = faces[:check_limit]
    with torch.inference_mode():
        reference = model(torch.from_numpy(x)).numpy()
    fp32_all = onnx_logits(out, faces)
    fp32 = fp32_all[:len(x)]
    summary: dict[str, Any] = {
        "checkpoint": str(checkpoint), "onnx": str(out), "opset": 17, "inputs_checked": len(x), "real_images": bool(rows),
        "max_abs_diff": float(np.abs(fp32 - reference).max()), "size_fp32_bytes": out.stat().st_size,
        "latency_ms_fp32": latency_ms(out, x),
    }
    labels = [r.label for r in rows]
    index = {c: i for i, c in enumerate(side["classes"])}
    if rows and all(label in index for label in labels):
        y = np.array([index[label] for label in labels])
        summary.update({"accuracy_split": split, "accuracy_faces": len(y), "accuracy_fp32": float((fp32_all.argmax(1) == y).mean())})
    if int8:
        q = _quantize(out, x)
        q_all = onnx_logits(q, faces)
        summary.update({"onnx_int8": str(q), "size_int8_bytes": q.stat().st_size,
                        "int8_size_ratio": q.stat().st_size / out.stat().st_size,
                        "int8_top1_agreement": float((q_all.argmax(1) == fp32_all.argmax(1)).mean()),
                        "int8_max_abs_diff": float(np.abs(q_all - fp32_all).max()), "latency_ms_int8": latency_ms(q, x)})
        if "accuracy_fp32" in summary:
            summary["accuracy_int8"] = float((q_all.argmax(1) == y).mean())
            summary["accuracy_change"] = summary["accuracy_int8"] - summary["accuracy_fp32"]
    return summary


def _quantize(fp32: Path, calibration: np.ndarray) -> Path:
    """Static INT8 (QDQ, per-channel weights), calibrated on the same preprocessed images."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"image": calibration[i : i + 16]} for i in range(0, len(calibration), 16)])

        def get_next(self):  # noqa: ANN202
            return next(self.batches, None)

    prepared = fp32.with_name(f".{fp32.stem}.pre.onnx")
    quant_pre_process(str(fp32), str(prepared))
    out = fp32.with_name(f"{fp32.stem}.int8.onnx")
    tmp = out.with_name(f".{out.name}.tmp")
    # reduce_range: 7-bit weights. Without it the CPU student (MobileNetV2) lost 10.2 points of FER2013 test accuracy
    # (top-1 agreement with fp32: 60 %): on CPUs without VNNI, ONNX Runtime's u8 x s8 products of full-range per-channel
    # weights saturate, which its documentation names as the case for this option; with it, -0.5 to +0.5 points and 97 %
    # agreement (issue 39, bench/RESULTS.md "CPU student"). Percentile calibration instead: -0.7 points, 87 % agreement.
    quantize_static(str(prepared), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    os.remove(prepared)
    tmp.replace(out)
    return out
