"""The option reference (docs/reference.md) says what the parsers say."""
from __future__ import annotations

import pytest

from resnet_perf import reference
from resnet_perf.machine import cpu


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


@pytest.mark.parametrize("flags", ["avx2 fma", "avx2 fma avx512f avx512_bf16", "avx2 fma avx512f avx512_bf16 amx_bf16"],
                         ids=["zen3", "zen4", "amx"])
def test_the_reference_does_not_depend_on_the_cpu_that_renders_it(monkeypatch, flags):
    # CI runs on whichever CPU the day gives: a default resolved for this CPU would make the check fail elsewhere
    real = cpu.read_proc
    monkeypatch.setattr(cpu, "read_proc", lambda name: f"processor\t: 0\nflags\t\t: {flags}\n" if name == "cpuinfo"
                        else real(name))
    assert cpu.cpu_flags() == flags.split()
    assert reference.render() == reference.REFERENCE.read_text()
