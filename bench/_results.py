"""Write a benchmark's figures into its own section of bench/RESULTS.md (and a JSON beside it)."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    import torch

    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}, "
            f"{'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU'}")


def budget_table_header(first: str, budgets: list | tuple, last: str) -> list[str]:
    """The header and rule of a table with one column per review budget (5 % ... 70 %) between ``first`` and ``last``."""
    return ["| " + first + " | " + " | ".join(f"{int(100 * b)} %" for b in budgets) + f" | {last} |", "|---|" + "---|" * (len(budgets) + 1)]


def write_section(name: str, markdown: str, data: dict) -> None:
    """Replace the ``<!-- name:start -->`` ... ``<!-- name:end -->`` block (appended when missing)."""
    command = "python " + " ".join([os.path.relpath(sys.argv[0], RESULTS.parent.parent), *sys.argv[1:]])
    block = f"<!-- {name}:start -->\n{markdown.rstrip()}\n\nCommand: `{command}`  \nMachine: {machine()}\n<!-- {name}:end -->"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nEach section is rewritten by the script named in it.\n"
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)
    out = RESULTS.with_name("results")
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=2, default=float) + "\n")
    print(markdown)
