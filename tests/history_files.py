"""A small synthetic history of result files for the report's tests: two machines, a planted step."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

from resnet_perf.analysis.results import result_payload, write_results

CONFIG = "resnet50-fp32-noxla-nhwc-b16-112"
RUNS = 12
STEP_AT = 7
"""The first run of machine ``FAST``'s history that is 15% slower."""
SLOWDOWN = 0.85
FAST, SLOW = "amd-2c-aaaaaaaa", "intel-2c-bbbbbbbb"
START = datetime(2026, 11, 1, tzinfo=timezone.utc)
PEAK, FLOPS, BATCH = 1e12, 2e10, 16


def commit(number: int) -> str:
    return f"{number:02d}" * 20


def machine(machine_id: str) -> dict:
    vendor = "AuthenticAMD" if machine_id.startswith("amd") else "GenuineIntel"
    return {"id": machine_id, "hardware": {"cpu_vendor": vendor, "cpu_model": f"{vendor} test CPU", "cores": 2,
                                           "cpu_family": "25", "cpu_model_number": "17",
                                           "isa_flags": ["avx512f"], "memory_gib": 24, "gpu_names": []},
            "software": {}}


def step_row(median_s: float, mode: str = "train", config: str = CONFIG) -> dict:
    return {"bench": "step", "run_id": config, "mode": mode, "batch_size": BATCH, "compute_dtype": "float32",
            "step_times_s": [median_s] * 3, "round_medians_s": [median_s] * 3, "median_s": median_s,
            "flops_per_step": FLOPS}


def write_history(folder: Path) -> list[Path]:
    """``RUNS`` bench files per machine, a day apart: ``FAST`` at ~10 images/s with jitter of
    +-2% and 15% slower from run ``STEP_AT`` on (at commit ``commit(STEP_AT)``); ``SLOW`` at half
    that speed, unchanged.  Returns the files written."""
    rng, written = random.Random(7), []
    for machine_id, base_s in ((FAST, 1.6), (SLOW, 3.2)):
        for run in range(RUNS):
            moment = START + timedelta(days=run, hours=1 if machine_id == SLOW else 0)
            median = base_s * rng.uniform(0.98, 1.02) / (SLOWDOWN if machine_id == FAST and run >= STEP_AT else 1)
            payload = result_payload("bench", [step_row(median)], {"machine": machine(machine_id),
                                                                   "git_commit": commit(run)},
                                     matmul_peak_readings={"float32": [PEAK]})
            payload["created"] = moment.isoformat()
            path = folder / machine_id / f"bench-{moment:%Y%m%dT%H%M%SZ}.json"
            written.append(write_results(path, payload))
    return written
