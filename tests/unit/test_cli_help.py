"""Every command says what it does, and every option with a default says it in --help."""

from __future__ import annotations

import argparse
from pathlib import Path

import streams
from streams.cli import build_parser

PACKAGE = str(Path(streams.__file__).parent)


def commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_command_has_a_description_and_shows_its_defaults() -> None:
    missing = []
    for name, parser in commands().items():
        if not parser.description:
            missing.append(f"{name}: no description")
        text = parser.format_help()
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            said = parser._get_formatter()._get_help_string(action)  # what --help prints
            if action.default not in (None, False) and "default" not in (said or ""):
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
        assert "%(" not in text, name  # every placeholder filled
        assert PACKAGE not in text, name  # a bundled file is named, not this machine's path
    assert not missing, missing
