"""Compile the pure engine (``streams/engine``) to C extensions with mypyc, beside a copy
of the package, for the offline commands (``replay``, ``simulate``, the benchmarks).

mypyc (part of mypy, already pinned in ``requirements-dev.lock``) compiles the same typed
Python modules: no other language, no change of behaviour where the annotations hold
(it checks them at run time). Outputs stay byte-identical; ``tests/unit/replay/
test_compiled.py`` replays the golden scenarios through the compiled copy and compares.

The copy goes to ``--out`` (default ``build/compiled``): ``streams/`` as it is now, with
a ``.so`` beside each compiled module. Run a command through it with
``PYTHONPATH=build/compiled adl-monitor replay ...`` (``make replay-compiled``). The
copy does not follow later edits: compile again after changing ``streams/``
(``COMPILED_FROM`` in the copy holds the sources' sha256; ``--check`` compares).

Not compiled: ``streams/engine/profiles`` (the venue profiles combine two bases, which
a native class cannot) and everything outside the engine. Not for the streaming paths:
the worker's snapshots and the agents' warm copies pickle the engine, and a compiled
(native) class is rebuilt through its ``__init__`` when unpickled.

Usage: python tools/compile_engine.py [--out build/compiled] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINE = Path("streams") / "engine"
STAMP = "COMPILED_FROM"


def compiled_modules(root: Path = ROOT) -> list[Path]:
    """The engine's modules mypyc compiles (relative to ``root``)."""
    return sorted(
        p.relative_to(root) for p in (root / ENGINE).glob("*.py") if p.name != "__init__.py"
    )


def sources_digest(root: Path = ROOT) -> str:
    """sha256 over every ``.py`` of ``streams/`` (path and bytes), in path order."""
    digest = hashlib.sha256()
    for path in sorted((root / "streams").rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def is_current(out: Path, root: Path = ROOT) -> bool:
    stamp = out / STAMP
    return stamp.exists() and stamp.read_text().strip() == sources_digest(root)


def compile_engine(out: Path, root: Path = ROOT) -> None:
    """A fresh copy of ``streams/`` in ``out`` with the engine compiled beside it."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copytree(
        root / "streams", out / "streams", ignore=shutil.ignore_patterns("__pycache__", "*.so")
    )
    (out / "pyproject.toml").write_text(_mypy_settings(root))
    modules = [str(m) for m in compiled_modules(root)]
    # the mypyc script of this interpreter's environment (a venv's bin/)
    mypyc = Path(sys.executable).with_name("mypyc")
    command = [str(mypyc)] if mypyc.exists() else [sys.executable, "-m", "mypyc"]
    subprocess.run([*command, *modules], cwd=out, check=True, stdout=subprocess.DEVNULL)
    native = native_int_divisions(out / "build")
    shutil.rmtree(out / "build", ignore_errors=True)  # the C sources and objects
    if native:
        shutil.rmtree(out)
        raise SystemExit(
            "an int / int division compiled as two doubles (rounded twice above 2**53) in "
            f"{', '.join(native)}: divide through streams.engine.fixed.ratio (or to_float)"
        )
    (out / STAMP).write_text(sources_digest(root) + "\n")
    check_loaded(out)


def _mypy_settings(root: Path) -> str:
    """The ``[tool.mypy]`` tables of the project's pyproject.toml (mypyc type-checks
    first; the rest would make setuptools look for the project's files)."""
    kept, keeping = [], False
    for line in (root / "pyproject.toml").read_text().splitlines():
        if line.startswith("["):
            keeping = line.strip("[] ").startswith("tool.mypy")
        if keeping:
            kept.append(line)
    return "\n".join(kept) + "\n"


_FUNCTION = re.compile(r"^\S.*\bCPyDef_(\w+)\(.*\) \{$")
# mypyc's ``a / b`` of two ints: each converted to a double, then divided. Allowed only
# in ``fixed.ratio``, where both are within 2**53 (exact doubles: one rounding).
_NATIVE_DIVISION = "CPyTagged_TrueDivide("
_RATIO = "fixed___ratio"  # mypyc's C name of ``streams.engine.fixed.ratio``


def native_int_divisions(build: Path) -> list[str]:
    """The compiled functions (mypyc's C names) dividing two ints natively, but
    ``fixed.ratio``'s own fast path."""
    found: list[str] = []
    for source in sorted(build.rglob("*.c")):
        function = "?"
        for line in source.read_text(errors="replace").splitlines():
            header = _FUNCTION.match(line)
            if header is not None:
                function = header[1]
            elif _NATIVE_DIVISION in line and function != _RATIO:
                found.append(function)
    return sorted(set(found))


def check_loaded(out: Path) -> None:
    """The copy's engine imports as extension modules (not the ``.py`` beside them)."""
    probe = "import streams.engine.engine as e; print(e.__file__)"
    env = {**os.environ, "PYTHONPATH": str(out)}
    loaded = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=out,  # not the checkout's own streams/ (``-c`` puts the directory first)
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not loaded.endswith(".so"):
        raise SystemExit(f"the compiled engine did not load: {loaded}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "compiled")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the copy is missing or out of date"
    )
    args = parser.parse_args()
    if args.check:
        current = is_current(args.out)
        print(f"{args.out}: {'current' if current else 'missing or out of date'}")
        return 0 if current else 1
    compile_engine(args.out)
    print(f"compiled {len(compiled_modules())} engine modules into {args.out}")
    print(f"run: PYTHONPATH={args.out} adl-monitor replay ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
