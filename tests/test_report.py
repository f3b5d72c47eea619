"""The report's Models table shows numbers only (issue 42): a checkpoint's metrics can come from a sidecar made elsewhere."""

from __future__ import annotations


def test_metrics_that_are_not_numbers_never_reach_the_page() -> None:
    from curate.report.build import _export_cells, _num
    from curate.report.gather import shown_metrics

    hostile = "<script>alert(1)</script>"
    flat = {"accuracy": hostile, "balanced_accuracy": 0.5, "macro_f1": float("nan"), "ece": True, "n": "7",
            "confusion_matrix": [[1, hostile], [0, 2]]}
    export = {"size_int8_bytes": hostile, "latency_ms_int8": 0.8, "accuracy_change": -0.01, "accuracy_faces": 10,
              "accuracy_split": hostile}
    shown = shown_metrics(flat, export)
    assert shown["accuracy"] is None and shown["balanced_accuracy"] == 0.5 and shown["macro_f1"] is None and shown["ece"] is None
    assert shown["n"] is None and shown["confusion"] is None and shown["export"]["accuracy_split"] is None
    cells = "".join(_num(shown[k]) for k in ("accuracy", "balanced_accuracy", "macro_f1", "ece")) + _export_cells(shown["export"])
    assert "<script" not in cells and "not exported" in cells
    assert _num(hostile) == "&lt;script&gt;alert(1)&lt;/script&gt;", "anything else that reaches a cell is escaped"
    good = shown_metrics({"accuracy": 0.6, "n": 7153, "confusion_matrix": [[3, 1], [0, 2]]},
                         {"size_int8_bytes": 1_000_000, "latency_ms_int8": 0.9, "accuracy_change": 0.004, "accuracy_faces": 7153,
                          "accuracy_split": "test"})
    assert good["n"] == 7153 and good["confusion"] == [[3, 1], [0, 2]]
    assert "+0.4 points on test (7,153 faces)" in _export_cells(good["export"])
