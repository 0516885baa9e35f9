"""Any engine benchmark twice in one run: with this tree's engine as Python, then with
the same engine compiled by mypyc (``tools/compile_engine.py``), each in a process of
its own; both outputs printed one after the other. The ratio of their figures is the
compiled engine's speed-up on that benchmark, measured side by side on the same machine.

Usage: python benchmarks/bench_compiled.py [--compiled DIR] SCRIPT [ARGS...]
    e.g. python benchmarks/bench_compiled.py bench_block.py
         python benchmarks/bench_compiled.py bench_mark_tick.py --sizes 100000

(``bench_replay.py --compiled`` does the same for replay and also compares the output
files byte for byte.) Without ``--compiled``, the engine is compiled now into a
temporary folder (~70 s).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from beside import ROOT, compiled_engine

HERE = Path(__file__).resolve().parent


def run(script: Path, args: list[str], tree: Path, label: str) -> None:
    """``script`` with ``tree``'s ``streams`` first on the path."""
    print(f"--- {label}: {tree}", flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(ROOT)])}
    subprocess.run([sys.executable, str(script), *args], env=env, check=True, cwd=tree)  # noqa: S603


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compiled", type=Path, help="an engine compiled before (its --out)")
    parser.add_argument("script", help="a benchmark of benchmarks/, e.g. bench_block.py")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the benchmark's own arguments")
    args = parser.parse_args()
    script = HERE / args.script
    with tempfile.TemporaryDirectory() as tmp:
        compiled = compiled_engine(args.compiled, Path(tmp))
        run(script, args.args, ROOT, "interpreted")
        run(script, args.args, compiled, "compiled (mypyc)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
