"""Run one benchmark script in this tree and, beside it, in another checkout.

Each tree runs the script with ``--json`` in its own process (``PYTHONPATH`` and working
directory set to that tree), at the same time: both see the same noisy machine, so the
ratio of their figures is the measurement.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_beside(
    script: str, argv: list[str], against: Path | None, tree: Path = ROOT
) -> dict[str, dict[str, Any]]:
    """``script argv --json`` in ``tree`` ("this tree": this checkout unless given) and,
    with ``against``, in that checkout ("against"); their printed JSON by name. Exits if
    either fails."""
    trees = {"this tree": (tree, argv)}
    if against is not None:
        trees["against"] = (against.resolve(), argv)
    return run_each(script, trees)


def run_each(script: str, runs: dict[str, tuple[Path, list[str]]]) -> dict[str, dict[str, Any]]:
    """``script argv --json`` for each name's (tree, argv), all at the same time, each in
    its own process; their printed JSON by name. Exits if any fails."""
    processes = {
        name: subprocess.Popen(  # noqa: S603  # our own script
            [sys.executable, script, *argv, "--json"],
            env={**os.environ, "PYTHONPATH": str(tree)},
            cwd=tree,
            stdout=subprocess.PIPE,
        )
        for name, (tree, argv) in runs.items()
    }
    results = {}
    for name, process in processes.items():
        out, _ = process.communicate()
        if process.returncode:
            sys.exit(f"{name}: exit {process.returncode}")
        results[name] = json.loads(out)
    return results


def compiled_engine(given: Path | None, tmp: Path) -> Path:
    """``given`` (an engine compiled before: ``tools/compile_engine.py --out``), or the
    engine compiled now into ``tmp`` (~70 s) when none or an empty path is given."""
    if given is not None and given.name:
        return given
    out = tmp / "compiled-engine"
    tool = ROOT / "tools" / "compile_engine.py"
    subprocess.run([sys.executable, str(tool), "--out", str(out)], check=True)  # noqa: S603
    return out
