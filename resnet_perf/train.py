"""python -m resnet_perf.train: train a ResNet on Fashion-MNIST with a recipe, to a target accuracy.

    python -m resnet_perf.train                                  # the fast recipe (resnet_perf.training.recipes)
    python -m resnet_perf.train --stop-at-target --seeds 0,1,2   # time to target over three seeds
    python -m resnet_perf.train --recipe d2l                     # the seed article's settings
    python -m resnet_perf.train --replicas 2 --epochs 1 --limit-train 2048 --limit-test 512

This module is the command line (no TensorFlow until the training starts); the run is
``resnet_perf.training.loop``, the recipes ``resnet_perf.training.recipes``.  ``--seeds`` runs one fresh process
per seed, one after another, and reports the median, min and max time to target over the seeds
that reached it (``resnet_perf.training.seeds``).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from resnet_perf import cli
from resnet_perf.config import BATCH_NORMS, FILTER_GRADS
from resnet_perf.errors import UserError
from resnet_perf.machine.fingerprint import measured_on
from resnet_perf.precision import AUTO_PRECISION, NATIVE_BF16_FLAGS, PRECISIONS
from resnet_perf.training.cluster import STARTUP_TIMEOUT_S, current_task
from resnet_perf.training.fashion_mnist import AUGMENTATIONS, IMAGE_SIDE, TRANSLATE_PIXELS
from resnet_perf.training.loop import train
from resnet_perf.training.recipes import (AUTO_BATCH_NORM, AUTO_FILTER_GRAD, BFLOAT16_SETTINGS, DEFAULT_RECIPE, RECIPES,
                                          SCHEDULES, STRATEGIES, TrainConfig)
from resnet_perf.training.seeds import parse_seeds, run_seeds
from resnet_perf.training.strategies import lost_worker_reason


def _recipe_name(argv: Sequence[str]) -> str:
    """The ``--recipe`` of a command line, read first: the other flags' defaults are its settings."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--recipe", default=DEFAULT_RECIPE)
    known, _rest = early.parse_known_args(argv)
    return known.recipe


RUN_OPTIONS = (*cli.CONFIG_OPTIONS, "onednn")
"""The ``RunConfig`` flags of the train command (``cli.add_config_options``)."""


def _recipe_default(recipe_name: str, setting: str) -> str:
    """``32, or 48 where the run computes in bfloat16``: a setting's default as the recipe has it, not as it
    resolves on this CPU (the help and docs/reference.md must not depend on the CPU that renders them)."""
    recipe = RECIPES[recipe_name]
    value = getattr(recipe, setting)
    if setting in recipe.bfloat16 and recipe.bfloat16[setting] != value:
        return f"{value}, or {recipe.bfloat16[setting]} where the run computes in bfloat16"
    return str(value)


def build_parser(recipe_name: str = DEFAULT_RECIPE) -> argparse.ArgumentParser:
    recipe = TrainConfig.from_recipe(recipe_name if recipe_name in RECIPES else DEFAULT_RECIPE)
    parser = cli.Parser(
        prog="python -m resnet_perf.train",
        description="Train a ResNet on the full Fashion-MNIST under MirroredStrategy with a recipe, timing every "
                    "epoch and the time to the target test accuracy. Every flag below defaults to the chosen "
                    "recipe's setting (shown for --recipe " + recipe.recipe + ").")
    parser.add_argument("--recipe", choices=RECIPES, default=DEFAULT_RECIPE,
                        help="; ".join(f"{name}: {r.description}" for name, r in RECIPES.items())
                        + " (default %(default)s)")
    cli.add_config_options(parser, recipe.run, fields=RUN_OPTIONS,
                           image_help=f"Fashion-MNIST images (resized from {IMAGE_SIDE})",
                           batch_help="global batch, split over the replicas",
                           described_defaults={"image_size": _recipe_default(recipe.recipe, "image_size")},
                           precision_help=f"one of {', '.join(PRECISIONS)} (amp_bf16: grappler's bf16 rewrite of the "
                                          f"float32 model, on a CPU with bfloat16 instructions), or "
                                          f"{AUTO_PRECISION}: mixed_bf16 on a "
                                          f"CPU with bfloat16 instructions ({', '.join(NATIVE_BF16_FLAGS)}), else "
                                          f"fp32")
    # the recipe's own setting, not what it resolves to here: the help (and docs/reference.md) must not
    # depend on the CPU that renders them; TrainConfig.from_recipe resolves auto
    parser.set_defaults(precision=RECIPES[recipe.recipe].precision)
    parser.add_argument("--filter-grad", choices=(*FILTER_GRADS, AUTO_FILTER_GRAD),
                        default=RECIPES[recipe.recipe].filter_grad,
                        help=f"{cli.FILTER_GRAD_HELP}; auto: gemm on a CPU with AVX-512 and without AMX, where "
                             "that was measured to pay, in NHWC where some layer takes it, else conv "
                             "(default %(default)s)")
    parser.add_argument("--batch-norm", choices=(*BATCH_NORMS, AUTO_BATCH_NORM),
                        default=RECIPES[recipe.recipe].batch_norm,
                        help="keras: Keras's BatchNormalization; fused: the same function as TensorFlow's fused "
                             "kernel, one op each way; auto: fused when training in bfloat16, where it was shown to "
                             "train, keras in float32 (default %(default)s)")
    on_off = dict(choices=tuple(cli.ON_OFF))
    parser.add_argument("--zero-init-residual", default="on" if recipe.zero_init_residual else "off", **on_off,
                        help="start the scale of each residual block's last batch norm at 0, so every block "
                             "starts as its shortcut (default %(default)s)")
    parser.add_argument("--epochs", type=int,
                        help=f"epochs the schedule spans (default {_recipe_default(recipe.recipe, 'epochs')})")
    parser.add_argument("--lr", type=float, default=recipe.lr, help="peak learning rate (default %(default)s)")
    parser.add_argument("--schedule", choices=SCHEDULES, default=recipe.schedule,
                        help="cosine / linear: linear warm-up over 10%% of the steps, then cosine or linear decay "
                             "to 0; constant (default %(default)s)")
    parser.add_argument("--momentum", type=float, default=recipe.momentum, help="SGD momentum (default %(default)s)")
    parser.add_argument("--nesterov", default="on" if recipe.nesterov else "off", **on_off,
                        help="Nesterov momentum (default %(default)s)")
    parser.add_argument("--weight-decay", type=float, default=recipe.weight_decay,
                        help="decoupled weight decay (default %(default)s)")
    parser.add_argument("--clip-norm", type=float, default=recipe.clip_norm, metavar="NORM",
                        help="scale each step's gradients down to this global norm when above it (per replica, "
                             "before they are summed over replicas); 0: off (default %(default)s)")
    parser.add_argument("--label-smoothing", type=float, default=recipe.label_smoothing,
                        help="share of each label's probability spread over all classes (default %(default)s)")
    parser.add_argument("--augment", choices=AUGMENTATIONS, default=recipe.augment,
                        help=f"translate: random shifts of up to {TRANSLATE_PIXELS} pixels of every training image, "
                             "anew each epoch; flip-translate: also random left-right flips (default %(default)s)")
    parser.add_argument("--test-flip", default="on" if recipe.test_flip else "off", **on_off,
                        help="evaluate on the mean prediction of each test image and its mirror image "
                             "(default %(default)s)")
    parser.add_argument("--test-shift", type=int, default=recipe.test_shift, metavar="PIXELS",
                        help="evaluate on the mean prediction of each test image and its 4 copies shifted by this "
                             "many pixels left, right, up and down; 0: off (default %(default)s)")
    parser.add_argument("--ema", type=float, default=recipe.ema, metavar="DECAY",
                        help="evaluate an exponential moving average of the weights, updated every step with this "
                             "decay (at most (1 + step) / (10 + step) early on); 0: off (default %(default)s)")
    parser.add_argument("--eval-every", type=int, default=recipe.eval_every, metavar="K",
                        help="evaluate after every K-th epoch and the last; time to target is read at "
                             "evaluations only (default %(default)s)")
    parser.add_argument("--target-accuracy", type=float, default=recipe.target_accuracy,
                        help="test accuracy whose time is reported (default %(default)s)")
    parser.add_argument("--stop-at-target", action="store_true",
                        help="end the run at the first evaluation that reaches --target-accuracy")
    parser.add_argument("--seed", type=int, default=0, help="shuffling and initialisation seed (default %(default)s)")
    parser.add_argument("--seeds", metavar="S,S,...",
                        help="run once per seed, each in a fresh process, and report time to target over them "
                             "(median, min, max, how many reached it)")
    parser.add_argument("--replicas", default="auto",
                        help="'auto' (all GPUs, or 1 CPU device) or N (N GPUs, or N logical CPU devices); "
                             "default %(default)s")
    parser.add_argument("--data-dir", help="folder with the four Fashion-MNIST .gz files (default: search, see README)")
    parser.add_argument("--output", type=Path, help="result JSON (default results/train-<run_id>-<UTC time>.json)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="mirrored",
                        help="mirrored: MirroredStrategy over --replicas devices of this machine; multiworker: "
                             "MultiWorkerMirroredStrategy over the cluster in TF_CONFIG, only the chief writes "
                             "--output (python -m resnet_perf.launch starts workers here) (default %(default)s)")
    parser.add_argument("--startup-timeout", type=float, default=STARTUP_TIMEOUT_S, metavar="S",
                        help="multiworker: how long to wait for the other workers of TF_CONFIG to start before "
                             "ending with a line naming the missing ones (default %(default).0f s)")
    parser.add_argument("--limit-train", type=int, help="use only the first N training images (smoke runs)")
    parser.add_argument("--limit-test", type=int, help="use only the first N test images (smoke runs)")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The validated TrainConfig the command line describes (TensorFlow not started yet)."""
    replicas: int | str = args.replicas
    if replicas != "auto":
        try:
            replicas = int(replicas)
        except ValueError:
            raise UserError(f"--replicas must be 'auto' or an integer, got {args.replicas!r}") from None
    run = cli.config_kwargs(args, RUN_OPTIONS)
    given = {name: value for name, value in {**run, "epochs": args.epochs}.items()
             if name not in BFLOAT16_SETTINGS or value is not None}  # unset: the recipe's for the run's precision
    return TrainConfig.from_recipe(
        args.recipe, **given, filter_grad=args.filter_grad, batch_norm=args.batch_norm,
        zero_init_residual=cli.ON_OFF[args.zero_init_residual], lr=args.lr,
        schedule=args.schedule, momentum=args.momentum, nesterov=cli.ON_OFF[args.nesterov],
        weight_decay=args.weight_decay, clip_norm=args.clip_norm, label_smoothing=args.label_smoothing,
        augment=args.augment, test_flip=cli.ON_OFF[args.test_flip], test_shift=args.test_shift, ema=args.ema,
        eval_every=args.eval_every, target_accuracy=args.target_accuracy,
        stop_at_target=args.stop_at_target, replicas=replicas, seed=args.seed, data_dir=args.data_dir,
        limit_train=args.limit_train, limit_test=args.limit_test, strategy=args.strategy)


def _default_output(config: TrainConfig) -> Path:
    return Path("results") / f"train-{config.run.run_id}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"


_COMMAND_INPUTS: list = []
"""The command's input iterators: never destroyed, as the command ends with ``cli.exit_process``
(``resnet_perf.training.loop.TrainingRun`` says why)."""


def main(argv: Sequence[str] | None = None, keep_inputs: list | None = None) -> int:
    """The command; ``keep_inputs``: see ``resnet_perf.training.loop.TrainingRun``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(_recipe_name(argv)).parse_args(argv)
    cli.take_interrupts()
    started, output = time.time(), None
    try:
        config = config_from_args(args)
        if config.strategy == "multiworker":
            current_task()  # TF_CONFIG checked before TensorFlow starts (train() imports it)
        if not (math.isfinite(args.startup_timeout) and args.startup_timeout > 0):
            raise UserError(f"--startup-timeout must be a positive number of seconds, got {args.startup_timeout}")
        output = args.output or _default_output(config)
        if args.seeds is not None:
            return run_seeds(config, parse_seeds(args.seeds), output)

        payload = train(config, output, args.startup_timeout, keep_inputs)
    except UserError as error:
        return cli.fail(error)
    except Exception as error:
        lost = lost_worker_reason(error) if args.strategy == "multiworker" else None
        return cli.fail(lost, exit_code=1) if lost else cli.fail_if_unsupported(error)
    except KeyboardInterrupt as stop:
        # The output is rewritten after every epoch (every seed): written since the start, it holds what finished
        written = output is not None and output.exists() and output.stat().st_mtime >= started
        print(f"\ninterrupted: what finished before it is in {output}" if written else
              "\ninterrupted before anything finished: nothing written", file=sys.stderr)
        return cli.interrupted_status(stop)
    from resnet_perf.analysis.tables import format_training_table  # loads pandas: not for --help and bad input

    print(format_training_table(payload["rows"]))
    summary = payload["summary"]
    reached = (f"{summary['time_to_target_s']:.1f} s (epoch {summary['epochs_to_target']}; evaluations "
               f"{summary['eval_to_target_s']:.1f} s and the first step {summary['compile_s']:.1f} s of it)"
               if summary["time_to_target_s"] is not None else "not reached")
    print(measured_on(payload["environment"]["machine"]))
    print(f"time to {config.target_accuracy:.2%} test accuracy: {reached}; final test accuracy "
          f"{summary['final_test_accuracy']:.4f}; training {summary['total_train_time_s']:.1f} s, "
          f"evaluation {summary['total_eval_time_s']:.1f} s, {summary['replicas']} replica(s)")
    if config.strategy == "multiworker" and not current_task().is_chief:
        print(f"{summary['task']}: the chief writes the result file")
    else:
        print(f"result written to {output}")
    return 0


if __name__ == "__main__":
    cli.exit_process(main(keep_inputs=_COMMAND_INPUTS))
