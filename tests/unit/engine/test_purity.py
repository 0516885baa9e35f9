"""streams/engine is pure: no framework, I/O, clock or metrics imports (STYLE.md rule 1)."""

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[3] / "streams" / "engine"
FORBIDDEN = {
    "faust", "aiokafka", "asyncio", "prometheus_client", "http", "urllib", "requests",
    "socket", "time", "datetime", "logging", "random", "threading", "os", "subprocess",
}  # fmt: skip


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_engine_imports_nothing_impure():
    files = sorted(ENGINE.rglob("*.py"))
    assert len(files) > 10
    offenders = {str(f.relative_to(ENGINE)): imported_roots(f) & FORBIDDEN for f in files}
    assert {f: bad for f, bad in offenders.items() if bad} == {}


def test_engine_modules_import_only_the_engine_from_the_project():
    for path in ENGINE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("streams.")
            ):
                assert node.module.startswith("streams.engine"), (path.name, node.module)
