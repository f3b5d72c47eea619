"""ONNX export matches torch; INT8 is smaller and reported; McNemar is right on a constructed case."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from curate.models.compare import mcnemar, per_class_recall_delta
from curate.models.manifest import Row
from tests import builders


def test_mcnemar_on_a_constructed_case() -> None:
    # 75 both right, 20 only A right, 5 only B right, 10 both wrong.
    a = np.array([1] * 75 + [1] * 20 + [0] * 5 + [0] * 10, bool)
    b = np.array([1] * 75 + [0] * 20 + [1] * 5 + [0] * 10, bool)
    r = mcnemar(a, b)
    assert (r["a_only_correct"], r["b_only_correct"], r["n"]) == (20, 5, 110)
    assert r["p_value"] == pytest.approx(binomtest(5, 25, 0.5).pvalue) == pytest.approx(0.004077, abs=1e-5)
    assert r["better"] == "A" and r["significant"] is True
    even = mcnemar(np.array([1, 0, 1, 0], bool), np.array([0, 1, 1, 0], bool))
    assert even["p_value"] == 1.0 and even["better"] == "tie" and not even["significant"]
    same = mcnemar(a, a)
    assert same["p_value"] == 1.0 and not same["significant"]


def test_per_class_recall_delta() -> None:
    y = np.array([0, 0, 1, 1])
    d = per_class_recall_delta(y, np.array([0, 1, 1, 1]), np.array([0, 0, 0, 1]), ["x", "y", "z"])
    assert d == {"x": {"recall_a": 0.5, "recall_b": 1.0, "delta_b_minus_a": 0.5, "n": 2},
                 "y": {"recall_a": 1.0, "recall_b": 0.5, "delta_b_minus_a": -0.5, "n": 2}}


def _untrained_checkpoint_and_faces(tmp_path: Path, seed: int) -> tuple:
    """(model, its checkpoint, rows of 21 synthetic FER2013 faces): what the export tests check against."""
    import torch

    from curate.models.checkpoint import save_checkpoint
    from curate.models.factory import create_model
    from curate.models.preprocess import Preprocess
    from curate.taxonomy import EMOTIONS

    torch.manual_seed(seed)
    model = create_model("mobilenetv2_050", len(EMOTIONS)).eval()
    ckpt = tmp_path / "m.safetensors"
    save_checkpoint(ckpt, model, {"arch": "mobilenetv2_050", "classes": list(EMOTIONS), "preprocess": Preprocess(48).to_dict()})
    built = builders.fer2013_folders(tmp_path / "fer", per_class=3)
    return model, ckpt, [Row(p, str(built.root / p), label, split) for p, (label, split) in built.expected.items()]


def test_onnx_export_matches_torch_and_int8_is_reported(tmp_path: Path) -> None:
    import torch

    from curate.models.export import export_onnx
    from curate.models.preprocess import Preprocess
    from curate.taxonomy import EMOTIONS

    model, ckpt, rows = _untrained_checkpoint_and_faces(tmp_path, seed=0)
    s = export_onnx(ckpt, int8=True, rows=rows)
    assert Path(s["onnx"]).is_file() and s["real_images"] and s["inputs_checked"] == len(rows)
    assert Path(s["onnx_int8"]).is_file() and s["size_int8_bytes"] < 0.5 * s["size_fp32_bytes"]
    # Checked against the torch model this test holds, not against the export's own report.
    from curate.models.export import _batch, onnx_logits

    x = _batch(rows, {"preprocess": Preprocess(48).to_dict()})
    with torch.inference_mode():
        reference = model(torch.from_numpy(x)).numpy()
    fp32, q = onnx_logits(Path(s["onnx"]), x), onnx_logits(Path(s["onnx_int8"]), x)
    assert np.abs(fp32 - reference).max() < 1e-3 and s["max_abs_diff"] == pytest.approx(float(np.abs(fp32 - reference).max()), abs=1e-6)
    agreement = float((q.argmax(1) == reference.argmax(1)).mean())
    assert agreement >= 0.6, f"INT8 agrees with torch on only {agreement:.0%} of faces"
    assert s["int8_top1_agreement"] == pytest.approx(float((q.argmax(1) == fp32.argmax(1)).mean()))
    # The accuracies recomputed from the labels and the two ONNX models' own outputs, not read back from the summary.
    y = np.array([EMOTIONS.index(r.label) for r in rows])
    assert s["accuracy_fp32"] == pytest.approx(float((fp32.argmax(1) == y).mean()))
    assert s["accuracy_int8"] == pytest.approx(float((q.argmax(1) == y).mean()))
    assert s["accuracy_change"] == pytest.approx(float((q.argmax(1) == y).mean() - (fp32.argmax(1) == y).mean()))


def test_export_accuracy_reads_every_face_of_the_split_it_names_and_latency_is_per_face_on_one_core(tmp_path: Path) -> None:
    """Issue 39: the export printed "accuracy 0.162" from its 512 check faces while retrain printed 0.254 on val for the
    same checkpoint. Now the check and calibration use ``check_limit`` faces, accuracy every face given, and the summary
    names the split and the count; latency is measured one face at a time on one core."""
    from curate.models.export import _batch, export_onnx, onnx_logits
    from curate.models.preprocess import Preprocess
    from curate.taxonomy import EMOTIONS

    _, ckpt, rows = _untrained_checkpoint_and_faces(tmp_path, seed=1)
    s = export_onnx(ckpt, int8=True, rows=rows, check_limit=5, split="test")
    assert s["inputs_checked"] == 5 and s["accuracy_faces"] == len(rows) > 5 and s["accuracy_split"] == "test"
    x = _batch(rows, {"preprocess": Preprocess(48).to_dict()})
    y = np.array([EMOTIONS.index(r.label) for r in rows])
    assert s["accuracy_fp32"] == pytest.approx(float((onnx_logits(Path(s["onnx"]), x).argmax(1) == y).mean()))
    assert s["accuracy_int8"] == pytest.approx(float((onnx_logits(Path(s["onnx_int8"]), x).argmax(1) == y).mean()))
    assert 0 < s["latency_ms_fp32"] < 1000 and 0 < s["latency_ms_int8"] < 1000


@pytest.mark.slow  # ~40 s: trains and exports; CI runs it (.ci/run)
def test_export_checks_parity_on_real_faces_of_a_dataset_without_val_or_test(tmp_path: Path) -> None:
    """Issue 15: CK+ class folders have no val/test split; the export must still check real faces, not noise."""
    import torch

    from curate.models.checkpoint import save_checkpoint
    from curate.models.factory import create_model
    from curate.models.preprocess import Preprocess
    from curate.taxonomy import EMOTIONS
    from tests.helpers import ingest_unfiltered, last_json, run_cli

    built = builders.ckplus(tmp_path / "ck")
    name, home, url = ingest_unfiltered(tmp_path, "ckplus", built.root, f"exp{os.getpid()}")
    torch.manual_seed(0)
    ckpt = tmp_path / "m.safetensors"
    save_checkpoint(ckpt, create_model("mobilenetv2_050", len(EMOTIONS)).eval(),
                    {"arch": "mobilenetv2_050", "classes": list(EMOTIONS), "preprocess": Preprocess(48).to_dict(), "dataset": name})
    for extra in (["--dataset", name], []):  # named, or taken from the checkpoint's sidecar
        s = last_json(run_cli("export", str(ckpt), "--format", "onnx", *extra, "--out", str(tmp_path / "m.onnx"), "--json",
                              env={"CURATE_HOME": str(home)}))
        assert s["real_images"] is True and s["inputs_checked"] == len(built.expected) and s["checked_split"] == "all"
