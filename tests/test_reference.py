"""The option reference (docs/reference.md) says what the parsers say."""
from __future__ import annotations

from resnet_perf import reference


def test_the_option_reference_is_what_the_parsers_generate():
    assert reference.REFERENCE.read_text() == reference.render(), \
        "docs/reference.md differs from the parsers: run python -m resnet_perf.reference"


def test_every_option_of_the_suite_and_the_commands_is_in_it():
    text = reference.REFERENCE.read_text()
    parsers = [reference.suite_parser()] + [__import__(f"resnet_perf.{name}", fromlist=["build_parser"]).build_parser()
                                            for name in reference.COMMANDS]
    options = {option for parser in parsers for action in parser._actions for option in action.option_strings}
    assert {"--train-limit", "--budget", "--fail-on", "--a-env", "--seeds", "--html"} <= options
    assert all(f"`{option}`" in text for option in options - {"-h", "--help"})
