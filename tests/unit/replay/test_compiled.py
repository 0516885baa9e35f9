"""The engine compiled by mypyc (``tools/compile_engine.py``) replays the golden
scenarios to the same bytes as the interpreter: the bundled cascade (every file, the
fixtures) and the seeded 10k-account scenario (a sha256 per file).

Compiling takes ~70 s on one core (gcc over one C file); each replay runs in a process
of its own with the compiled copy first on its path, as a user runs it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from streams.cli import bundled
from tests.unit.replay.conftest import assert_bundled_outputs, sha256

ROOT = Path(__file__).resolve().parents[3]
GCC = shutil.which("gcc") or shutil.which("cc")

pytestmark = pytest.mark.skipif(
    GCC is None and not os.environ.get("CI"), reason="no C compiler (tools/system-deps.sh)"
)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compiled") / "engine"
    built = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "compile_engine.py"), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    return out


def replay_compiled(compiled: Path, events: Path, out: Path) -> None:
    probe = (
        "import sys, streams.engine.engine as e; assert e.__file__.endswith('.so'), e.__file__; "
        "from streams.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    subprocess.run(
        [sys.executable, "-c", probe, "replay", str(events), "--quiet", "--out", str(out)],
        cwd=compiled,  # not the checkout: ``-c`` puts the working directory first
        env={**os.environ, "PYTHONPATH": str(compiled)},
        check=True,
        capture_output=True,
    )


def test_the_copy_knows_it_is_current(compiled: Path) -> None:
    check = [sys.executable, str(ROOT / "tools" / "compile_engine.py"), "--out"]
    assert subprocess.run([*check, str(compiled), "--check"], capture_output=True).returncode == 0
    missing = compiled.parent / "nothing-here"
    assert subprocess.run([*check, str(missing), "--check"], capture_output=True).returncode == 1


def test_compiled_engine_replays_the_bundled_cascade_byte_identical(
    compiled: Path, tmp_path: Path
) -> None:
    replay_compiled(compiled, bundled("cascade.jsonl"), tmp_path)
    assert_bundled_outputs(tmp_path)


def test_compiled_engine_replays_the_10k_scenario_byte_identical(
    compiled: Path, scenario_10k: tuple[dict, Path], tmp_path: Path
) -> None:
    golden, events = scenario_10k
    replay_compiled(compiled, events, tmp_path)
    got = {p.name: sha256(p) for p in sorted(tmp_path.iterdir())}
    assert got == golden["outputs"]


def test_a_native_int_division_is_found_outside_ratio(tmp_path: Path) -> None:
    # the shape of mypyc's C: a function's header, then its body; an int / int compiled
    # natively calls CPyTagged_TrueDivide (seen in the build of 2026-12-07)
    spec = importlib.util.spec_from_file_location(
        "compile_engine", ROOT / "tools" / "compile_engine.py"
    )
    assert spec is not None
    assert spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    (tmp_path / "a.c").write_text(
        "double CPyDef_fixed___ratio(CPyTagged cpy_r_numerator, CPyTagged cpy_r_denominator) {\n"
        "    cpy_r_r32 = CPyTagged_TrueDivide(cpy_r_numerator, cpy_r_denominator);\n"
        "}\n"
        "char CPyDef_queue___QueueTable___put(PyObject *cpy_r_self, CPyTagged cpy_r_x) {\n"
        "    cpy_r_r4 = CPyTagged_TrueDivide(cpy_r_x, 200000000);\n"
        "}\n"
        "double CPyDef_risk___AccountRisk___margin_ratio(PyObject *cpy_r_self) {\n"
        "    cpy_r_r1 = CPyTagged_TrueDivide(cpy_r_a, cpy_r_b);\n"
        "}\n"
        "double CPyDef_fund___coverage_ratio(CPyTagged cpy_r_a, CPyTagged cpy_r_b) {\n"
        "    cpy_r_r1 = CPyDef_fixed___ratio(cpy_r_a, cpy_r_b);\n"
        "}\n"
    )
    assert tool.native_int_divisions(tmp_path) == [
        "queue___QueueTable___put",
        "risk___AccountRisk___margin_ratio",
    ]
