"""Recipes as data, the train command line built from them, and the seeds' spread."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_perf.errors import UserError
from resnet_perf.machine.cpu import cpu_flags
from resnet_perf.precision import training_precision
from resnet_perf.train import build_parser, config_from_args
from resnet_perf.training import seeds
from resnet_perf.training.recipes import RECIPE_SETTINGS, RECIPES, TrainConfig, recipe_settings
from tests.fmnist_files import write_dataset

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_is_a_valid_run_and_the_command_line_reproduces_it(name):
    recipe = RECIPES[name]
    config = TrainConfig.from_recipe(name, seed=3, stop_at_target=True)
    precision = training_precision(recipe.precision, cpu_flags())
    settings = recipe_settings(name, precision)
    assert (config.run.depth, config.run.precision, config.run.image_size, config.run.batch_size, config.epochs) == (
        recipe.depth, precision, settings["image_size"], recipe.batch_size, settings["epochs"])
    assert config.changed_settings() == {}
    argv = config.argv()
    assert config_from_args(build_parser(name).parse_args(argv)) == config


def test_the_recipe_sets_the_defaults_and_a_flag_changes_one_setting():
    args = build_parser("d2l").parse_args(["--recipe", "d2l", "--lr", "0.1"])
    config = config_from_args(args)
    d2l = RECIPES["d2l"]
    assert config.recipe == "d2l" and config.run.image_size == d2l.image_size == 96
    assert config.momentum == 0.0 and config.run.precision == "fp32" and config.schedule == "constant"
    assert config.changed_settings() == {"lr": 0.1}
    assert set(RECIPE_SETTINGS) <= set(config.as_dict())  # every setting is in the result rows


@pytest.mark.parametrize("changes, message", [
    ({"recipe": "fastest"}, "unknown recipe 'fastest'"),
    ({"momentum": 1.0}, "momentum must be in [0, 1)"),
    ({"label_smoothing": 1.0}, "label smoothing must be in [0, 1)"),
    ({"augment": "mixup"}, "unknown augmentation 'mixup'"),
    ({"schedule": "step"}, "unknown schedule 'step'"),
    ({"ema": 1.0}, "ema must be in [0, 1) (0: off)"),
    ({"ema": float("nan")}, "ema must be a finite number"),
    ({"eval_every": 0}, "eval every must be at least 1"),
    ({"test_shift": -1}, "test shift must be >= 0"),
    ({"test_shift": 32}, "test shift must be >= 0 and below the image size 32"),
    ({"clip_norm": -1.0}, "clip norm must be >= 0 (0: off)"),
    ({"clip_norm": float("inf")}, "clip norm must be a finite number"),
])
def test_bad_settings_are_refused(changes, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        dataclasses.replace(TrainConfig.from_recipe(image_size=32), **changes)


@pytest.mark.parametrize("flags, precision", [(["avx2", "avx512f", "avx512_bf16"], "mixed_bf16"),
                                               (["avx2", "amx_bf16"], "mixed_bf16"), (["avx2", "fma"], "fp32")])
def test_the_fast_recipe_trains_in_bfloat16_only_where_the_cpu_has_it(monkeypatch, flags, precision):
    from resnet_perf.training import recipes

    monkeypatch.setattr(recipes, "cpu_flags", lambda: flags)
    assert RECIPES["fast"].precision == "auto" and training_precision("fp32", flags) == "fp32"
    config = TrainConfig.from_recipe()
    assert config.run.precision == precision and config.changed_settings() == {}  # auto is the recipe's own
    # its batch norm follows: the fused layer where it was shown to train (bfloat16), Keras's in float32
    assert config.batch_norm == ("fused" if precision == "mixed_bf16" else "keras")
    assert TrainConfig.from_recipe(precision="auto").run.precision == precision
    other = "fp32" if precision == "mixed_bf16" else "mixed_bf16"
    assert TrainConfig.from_recipe(precision=other).changed_settings() == {"precision": other}
    assert TrainConfig.from_recipe(batch_norm="keras", precision="mixed_bf16").batch_norm == "keras"


@pytest.mark.parametrize("flags, precision", [(["avx2", "avx512f", "avx512_bf16"], "mixed_bf16"),
                                               (["avx2", "amx_bf16"], "mixed_bf16"), (["avx2", "fma"], "fp32")])
def test_the_fast_recipe_spends_a_faster_bfloat16_step_on_larger_images(monkeypatch, flags, precision):
    from resnet_perf.training import recipes

    monkeypatch.setattr(recipes, "cpu_flags", lambda: flags)
    fast = RECIPES["fast"]
    bf16, fp32 = (tuple(recipe_settings("fast", dtype)[name] for name in ("image_size", "epochs"))
                  for dtype in ("mixed_bf16", "fp32"))
    assert bf16 != fp32 and bf16[0] == fast.bfloat16["image_size"]
    config = TrainConfig.from_recipe()
    assert (config.run.image_size, config.epochs) == (bf16 if precision == "mixed_bf16" else fp32)
    # the sizes follow the run's precision, not the CPU's: fp32 on a bfloat16 CPU trains as the recipe does in fp32
    for other, expected in (("fp32", fp32), ("amp_bf16", bf16), ("mixed_bf16", bf16)):
        if other == "amp_bf16" and precision == "fp32":
            continue  # refused where the CPU has no bfloat16 instructions
        run = TrainConfig.from_recipe(precision=other)
        assert (run.run.image_size, run.epochs) == expected
        assert run.changed_settings() == ({} if other == precision else {"precision": other})
    # a flag still changes one setting, whatever the precision
    changed = TrainConfig.from_recipe(image_size=40)
    assert changed.run.image_size == 40 and changed.epochs == config.epochs
    assert changed.changed_settings() == {"image_size": 40}


def test_a_recipe_sets_apart_for_bfloat16_only_the_settings_the_command_leaves_to_it():
    with pytest.raises(ValueError, match=r"bfloat16 settings \['lr'\] not among"):
        dataclasses.replace(RECIPES["fast"], bfloat16={"lr": 0.1})


def test_the_train_help_names_both_defaults_whatever_the_cpu(monkeypatch):
    from resnet_perf.training import recipes

    for flags in (["avx2", "fma"], ["avx2", "avx512f", "avx512_bf16"]):
        monkeypatch.setattr(recipes, "cpu_flags", lambda: flags)
        text = " ".join(build_parser().format_help().split())
        assert "(default 32, or 48 where the run computes in bfloat16)" in text
        assert "epochs the schedule spans (default 6)" in text  # the same in both


@pytest.mark.parametrize("flags, filter_grad", [(["avx2", "avx512f", "avx512_bf16"], "gemm"),
                                                 (["avx2", "avx512f"], "gemm"),
                                                 (["avx2", "avx512f", "amx_bf16"], "conv"), (["avx2", "fma"], "conv")])
def test_the_fast_recipe_takes_the_gemm_filter_gradients_where_they_were_measured_to_pay(monkeypatch, flags,
                                                                                          filter_grad):
    from resnet_perf.training import recipes

    monkeypatch.setattr(recipes, "cpu_flags", lambda: flags)
    config = TrainConfig.from_recipe()
    assert RECIPES["fast"].filter_grad == "auto" and config.run.filter_grad == filter_grad
    assert config.changed_settings() == {} and ("-fgemm" in config.run_id) == (filter_grad == "gemm")
    other = "conv" if filter_grad == "gemm" else "gemm"
    assert TrainConfig.from_recipe(filter_grad=other).changed_settings() == {"filter_grad": other}
    # where no layer would take it (the last stage larger than 7x7 pixels), auto keeps TensorFlow's
    assert TrainConfig.from_recipe(image_size=256).run.filter_grad == "conv"
    assert TrainConfig.from_recipe(image_size=256).changed_settings() == {"image_size": 256}
    assert TrainConfig.from_recipe(layout="nchw").run.filter_grad == "conv"  # extract_patches is NHWC only
    with pytest.raises(UserError, match="changes no layer of ResNet-18 at 256x256"):
        TrainConfig.from_recipe(image_size=256, filter_grad="gemm")


def test_seeds_are_parsed_and_their_spread_is_over_the_seeds_that_reached():
    assert seeds.parse_seeds("0,1,2") == [0, 1, 2]
    for text in ("0,,1", "a", "1,1"):
        with pytest.raises(UserError):
            seeds.parse_seeds(text)
    rows = [seeds.seed_row(seed, Path(f"s{seed}.json"), {"summary": {"time_to_target_s": time}}, 0)
            for seed, time in ((0, 500.0), (1, None), (2, 400.0), (3, 450.0))]
    assert seeds.time_to_target_spread(rows) == {"seeds": [0, 1, 2, 3], "reached": 3, "of": 4, "median_time_to_target_s": 450.0,
                                  "min_time_to_target_s": 400.0, "max_time_to_target_s": 500.0}
    assert seeds.time_to_target_spread(rows[1:2])["median_time_to_target_s"] is None


@pytest.mark.slow
def test_seeds_run_in_fresh_processes_and_their_file_feeds_the_report(tmp_path):
    from resnet_perf.history.points import load_history

    folder = write_dataset(tmp_path / "data", train=64, test=32)
    output = tmp_path / "results" / "seeds.json"
    command = [sys.executable, "-m", "resnet_perf.train", "--seeds", "4", "--epochs", "2", "--batch-size", "16",
               "--precision", "fp32", "--target-accuracy", "0.01", "--stop-at-target", "--data-dir", str(folder),
               "--output", str(output)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 of 1 seeds reached it" in done.stdout  # one seed: each is a whole process (the CI budget)
    result = json.loads(output.read_text())
    assert result["kind"] == "train_seeds" and [row["seed"] for row in result["rows"]] == [4]
    assert f"measured on {result['environment']['machine']['id']} (" in done.stdout
    for row in result["rows"]:  # any accuracy reaches 1%: each seed stopped after its first evaluation
        single = json.loads(Path(row["result_file"]).read_text())
        assert single["rows"][0]["seed"] == row["seed"] and len(single["rows"]) == 1
        assert row["time_to_target_s"] == single["summary"]["time_to_target_s"] == single["rows"][0]["clock_s"]
    summary = result["summary"]
    assert summary["min_time_to_target_s"] <= summary["median_time_to_target_s"] <= summary["max_time_to_target_s"]
    history = load_history([output.parent])
    median = history.points[history.points["step"].str.endswith("1 seeds")].iloc[0]
    assert median["value"] == summary["median_time_to_target_s"] and median["note"] == "1 of 1 seeds reached it"


def test_a_training_run_id_names_the_settings_that_set_the_run_apart(tmp_path):
    from resnet_perf.analysis.results import result_payload, write_results
    from resnet_perf.history.points import load_history

    plain = TrainConfig.from_recipe(epochs=6, image_size=32, ema=0.0, clip_norm=0.0, precision="mixed_bf16",
                                    filter_grad="conv", batch_norm="keras")
    assert plain.run_id == "resnet18-mixed_bf16-noxla-nhwc-b256-32-c1-k10-rauto-e6"  # as before recipes existed
    assert (TrainConfig.from_recipe(precision="mixed_bf16", filter_grad="conv").run_id
            == "resnet18-mixed_bf16-noxla-nhwc-b256-48-c1-k10-fbn-clip5-ema0.99-rauto-e6")
    assert (TrainConfig.from_recipe(precision="mixed_bf16", filter_grad="gemm").run_id
            == "resnet18-mixed_bf16-noxla-nhwc-b256-48-c1-k10-fgemm-fbn-clip5-ema0.99-rauto-e6")
    varied = dataclasses.replace(plain, augment="flip-translate", label_smoothing=0.1, batch_norm="fused",
                                 test_flip=True, replicas=2, zero_init_residual=True, ema=0.99, eval_every=2,
                                 test_shift=1, clip_norm=2.0)
    assert varied.run_id == ("resnet18-mixed_bf16-noxla-nhwc-b256-32-c1-k10-fbn-zir-clip2-ls0.1-flip-translate-tta"
                             "-tts1-ema0.99-ev2-r2-e6")
    assert "-lr0.05-constant-m0-plain-wd0-" in TrainConfig.from_recipe("d2l").run_id
    # a row written before run_ids named the settings: the history names it from its own fields
    old_row = {**varied.as_dict(), "bench": "train", "epoch": 1, "test_accuracy": 0.5,
               "run_id": "resnet18-mixed_bf16-noxla-nhwc-b256-32-c1-k10-r2-e6"}
    write_results(tmp_path / "train-old.json", result_payload("train", [old_row], {}))
    assert set(load_history([tmp_path]).points["config"]) == {varied.run_id}
