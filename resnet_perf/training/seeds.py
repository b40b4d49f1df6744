"""Time to target over several seeds: one fresh training process per seed, then their spread.

A seed's run is ``python -m resnet_perf.train`` with the same settings and ``--seed N``, in a fresh
process (nothing cached or warmed up from the seed before), writing ``<output>-seed<N>.json``; the
seeds run one after another, never beside each other (they would share the cores).  The seeds'
file (``<output>``, kind ``train_seeds``) holds one row per seed and, in its summary, the median,
min and max time to target over the seeds that reached it and how many did.
"""
from __future__ import annotations

import dataclasses
import statistics
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from resnet_perf.analysis.results import load_results, result_payload, write_results
from resnet_perf.errors import UserError
from resnet_perf.files import check_output_file
from resnet_perf.machine.fingerprint import fingerprint, measured_on
from resnet_perf.spawn import module_command, package_env
from resnet_perf.training.recipes import TrainConfig


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; a ``UserError`` for anything else or a repeated seed."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise UserError(f"--seeds expects comma-separated integers such as 0,1,2, got {text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds has a seed twice: {text!r}")
    return seeds


def seed_output(output: Path, seed: int) -> Path:
    return output.with_name(f"{output.stem}-seed{seed}{output.suffix or '.json'}")


def seed_row(seed: int, path: Path, payload: dict[str, Any] | None, status: int) -> dict[str, Any]:
    """One seed's outcome: its time to target (``None`` when missed), epochs, final accuracy, file."""
    summary = (payload or {}).get("summary") or {}
    return {"bench": "train_seed", "seed": seed, "result_file": str(path), "exit_status": status,
            "time_to_target_s": summary.get("time_to_target_s"), "epochs_to_target": summary.get("epochs_to_target"),
            "eval_to_target_s": summary.get("eval_to_target_s"), "compile_s": summary.get("compile_s"),
            "final_test_accuracy": summary.get("final_test_accuracy"), "epochs_run": len((payload or {}).get("rows", []))}


def time_to_target_spread(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max time to target over the seeds that reached it, and how many did."""
    times = [row["time_to_target_s"] for row in rows if row["time_to_target_s"] is not None]
    return {"seeds": [row["seed"] for row in rows], "reached": len(times), "of": len(rows),
            "median_time_to_target_s": statistics.median(times) if times else None,
            "min_time_to_target_s": min(times) if times else None,
            "max_time_to_target_s": max(times) if times else None}


def run_seeds(config: TrainConfig, seeds: Sequence[int], output: Path) -> int:
    """Train once per seed in fresh processes, one after another; write and print the spread.
    Exit status 0, or 1 when a seed's process failed."""
    if config.strategy != "mirrored":
        raise UserError("--seeds runs on this machine: use --strategy mirrored (or launch each seed yourself)")
    check_output_file(output)
    runs = [dataclasses.replace(config, seed=seed) for seed in seeds]  # every seed checked before the first trains
    machine = fingerprint()
    rows = []
    for number, (seed, run) in enumerate(zip(seeds, runs), start=1):
        path = seed_output(output, seed)
        args = [*run.argv(), "--output", path]
        print(f"seed {seed} ({number} of {len(seeds)}): python -m resnet_perf.train {' '.join(map(str, args))}",
              flush=True)
        status = subprocess.run(module_command("resnet_perf.train", args), env=package_env()).returncode
        payload = load_results(path) if path.exists() else None
        rows.append(seed_row(seed, path, payload, status))
        write_results(output, result_payload("train_seeds", rows, {"machine": machine},
                                             config=config.as_dict(), summary=time_to_target_spread(rows)))
    summary = time_to_target_spread(rows)
    _print_seeds(rows, summary, config.target_accuracy)
    print(measured_on(machine))
    print(f"seeds written to {output}")
    return 1 if any(row["exit_status"] for row in rows) else 0


def _print_seeds(rows: Sequence[dict[str, Any]], summary: dict[str, Any], target: float) -> None:
    from tabulate import tabulate

    table = [[row["seed"], row["time_to_target_s"], row["epochs_to_target"], row["final_test_accuracy"],
              row["exit_status"]] for row in rows]
    print(tabulate(table, headers=["seed", "time to target s", "epochs", "final test acc", "exit"],
                   floatfmt=".4g", tablefmt="github", missingval="not reached"))
    if summary["reached"]:
        print(f"time to {target:.2%}: median {summary['median_time_to_target_s']:.1f} s, min "
              f"{summary['min_time_to_target_s']:.1f} s, max {summary['max_time_to_target_s']:.1f} s; "
              f"{summary['reached']} of {summary['of']} seeds reached it")
    else:
        print(f"time to {target:.2%}: none of the {summary['of']} seeds reached it")
