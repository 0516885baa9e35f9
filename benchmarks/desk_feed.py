"""How evenly the fund desk was fed, read from an ``account-agents`` log: the summaries it
had received at each 10 s report, when it first said it was caught up, and the stall
warnings of its input (``risk_summaries[0]: nothing delivered for N s``).

Compares trees by their logs: run the same agents test on each (for the baseline, a
worktree with ``PYTHONPATH`` at it and ``--basetemp`` to keep the logs), then

    python benchmarks/desk_feed.py RUN_A/*/agents-*.log RUN_B/*/agents-*.log

Prints; asserts nothing (docs/benchmarks.md, thirty-fourth session).
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime
from pathlib import Path

_STAMP = re.compile(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+)\]")
_DESK = re.compile(r"fund desk: DeskStats\(marks=\d+, summaries=(\d+).*caught up (\w+)")
_STALL = re.compile(r"risk_summaries\[0\]: nothing delivered for (\d+) s")


def feed(path: Path) -> str:
    first: float | None = None
    last = 0.0
    summaries: list[int] = []
    caught_up_s: float | None = None
    stalls: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        stamp = _STAMP.match(line)
        if stamp is None:
            continue
        at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        first = at if first is None else first
        last = at - first
        if desk := _DESK.search(line):
            summaries.append(int(desk.group(1)))
            if desk.group(2) == "True" and caught_up_s is None:
                caught_up_s = last
        elif stall := _STALL.search(line):
            stalls.append(f"{stall.group(1)} s at {last:.0f} s")
    caught = "never" if caught_up_s is None else f"at {caught_up_s:.0f} s"
    return (
        f"{path}: {last:.0f} s logged, caught up {caught}, stall warnings "
        f"{stalls or 'none'}\n  summaries received at each report: {summaries}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logs", nargs="+", type=Path)
    for path in parser.parse_args().logs:
        if "fund desk:" in path.read_text(errors="replace"):  # the desk's process only
            print(feed(path))


if __name__ == "__main__":
    main()
