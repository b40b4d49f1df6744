"""``python -m resnet_perf.reference``: the option reference (``docs/reference.md``), generated from
the parsers themselves, so that it cannot drift from them: every command's ``build_parser()`` and
the benchmark suite's ``pytest_addoption`` (``benchmarks/conftest.py``).

    python -m resnet_perf.reference            # rewrite docs/reference.md
    python -m resnet_perf.reference --check    # exit 1 when docs/reference.md differs from the parsers
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Iterator, Sequence

from resnet_perf import cli
from resnet_perf.errors import UserError
from resnet_perf.files import write_text_atomic
from resnet_perf.spawn import PACKAGE_ROOT

COMMANDS = ("train", "profile", "compare", "ab", "report", "interleave", "launch", "model")
REFERENCE = PACKAGE_ROOT / "docs" / "reference.md"
SUITE_CONFTEST = PACKAGE_ROOT / "benchmarks" / "conftest.py"
HEADER = """# Option reference

[Documentation index](README.md)

Generated from the parsers by `python -m resnet_perf.reference`; `tests/test_reference.py` fails when
this file and the parsers differ. Every command also explains itself with `--help`.
"""


class _SuiteOptions:
    """Stands in for pytest's parser: ``getgroup(...).addoption(...)`` becomes an argparse group (the
    suite's options take argparse's keywords)."""

    def __init__(self) -> None:
        self.parser = argparse.ArgumentParser(prog="pytest benchmarks/ --benchmark-only", add_help=False)
        self.groups: dict[str, argparse._ArgumentGroup] = {}

    def getgroup(self, name: str, description: str = "") -> _SuiteOptions._Group:
        if name not in self.groups:
            self.groups[name] = self.parser.add_argument_group(description or name)
        return self._Group(self.groups[name])

    class _Group:
        def __init__(self, group: argparse._ArgumentGroup) -> None:
            self.group = group

        def addoption(self, *names: str, **kwargs) -> None:
            self.group.add_argument(*names, **kwargs)


def suite_parser() -> argparse.ArgumentParser:
    """The benchmark suite's own options, as its conftest adds them to pytest."""
    if not SUITE_CONFTEST.exists():
        raise UserError(f"{SUITE_CONFTEST} not found: the reference is generated from a source checkout")
    spec = importlib.util.spec_from_file_location("resnet_perf_suite_conftest", SUITE_CONFTEST)
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    options = _SuiteOptions()
    conftest.pytest_addoption(options)
    return options.parser


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _value(action: argparse.Action) -> str:
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return "flag"
    if action.choices:
        return " \\| ".join(f"`{choice}`" for choice in action.choices)
    if action.metavar:
        return f"`{action.metavar}`"
    kind = {int: "integer", float: "number"}.get(action.type)
    return kind or "text"


def _default(action: argparse.Action) -> str:
    unset = action.default is None or action.default == argparse.SUPPRESS or isinstance(action.default, bool)
    if unset or action.default == [] or action.nargs == argparse.REMAINDER:  # a flag's default is "off"
        return ""
    return f"`{action.default}`"


def option_rows(parser: argparse.ArgumentParser) -> Iterator[tuple[str, list[list[str]]]]:
    """Per argument group: its title and a row (option, value, default, meaning) per option."""
    formatter = parser._get_formatter()
    for group in parser._action_groups:
        rows = []
        for action in group._group_actions:
            if isinstance(action, argparse._HelpAction):
                continue
            names = ", ".join(f"`{name}`" for name in action.option_strings) or f"`{action.metavar or action.dest}`"
            meaning = formatter._expand_help(action) if action.help else ""
            rows.append([names, _value(action), _default(action), _cell(meaning)])
        if rows:
            yield group.title, rows


def _table(rows: list[list[str]]) -> str:
    lines = ["| option | takes | default | meaning |", "|---|---|---|---|"]
    return "\n".join(lines + [f"| {' | '.join(row)} |" for row in rows])


def _section(title: str, parser: argparse.ArgumentParser) -> str:
    parts = [f"## {title}"]
    if parser.description:
        parts.append(_cell(parser.description))
    for group_title, rows in option_rows(parser):
        parts.append(f"{group_title}:\n\n{_table(rows)}")
    return "\n\n".join(parts)


def render() -> str:
    """The whole reference, in markdown."""
    sections = [HEADER.rstrip(), _section("The benchmark suite", suite_parser())]
    for name in COMMANDS:
        module = importlib.import_module(f"resnet_perf.{name}")
        sections.append(_section(f"`python -m resnet_perf.{name}`", module.build_parser()))
    return "\n\n".join(sections) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser(prog="python -m resnet_perf.reference",
                        description="Write the option reference (docs/reference.md) from the parsers, or check it.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when docs/reference.md differs from what the parsers say")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        text = render()
        if args.check:
            current = REFERENCE.read_text() if REFERENCE.exists() else ""
            if current != text:
                return cli.fail(UserError(f"{REFERENCE} differs from the parsers: run python -m resnet_perf.reference"), 1)
            print(f"{REFERENCE} matches the parsers")
            return 0
        write_text_atomic(REFERENCE, text)
    except UserError as error:
        return cli.fail(error)
    except OSError as error:
        return cli.fail(UserError(f"cannot write {REFERENCE}: {error.strerror or error}"))
    print(f"written: {REFERENCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
