"""Training recipes and the configuration of a training run (no TensorFlow here).

A recipe is data: every setting of how a ResNet is trained on Fashion-MNIST, under one name, in
this module only; a few (``BFLOAT16_SETTINGS``) may differ where the run computes in bfloat16.
``python -m resnet_perf.train --recipe NAME`` starts from it and any flag changes one setting; the result
records the recipe's name and every setting the run used.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from collections.abc import Collection, Mapping
from typing import Any

from resnet_perf.config import BATCH_NORMS, RunConfig, gemm_layers
from resnet_perf.errors import UserError, require_choice
from resnet_perf.machine.cpu import cpu_flags
from resnet_perf.precision import (AUTO_PRECISION, NATIVE_BF16_FLAGS, PRECISIONS, compute_dtype, has_native_bf16,
                                   is_graph_rewrite, training_precision)
from resnet_perf.training.fashion_mnist import AUGMENTATIONS, NUM_CLASSES

AUTO_BATCH_NORM = "auto"
"""A recipe's batch norm chosen by its precision: ``training_batch_norm``."""
AUTO_FILTER_GRAD = "auto"
"""A recipe's filter gradients chosen by the CPU: ``training_filter_grad``."""
SCHEDULES = ("cosine", "linear", "constant")
"""cosine / linear: linear warm-up over the first ``WARMUP_FRACTION`` of the steps, then down to 0."""
WARMUP_FRACTION = 0.1
BFLOAT16_SETTINGS = ("image_size", "epochs")
"""The settings a recipe may set apart for runs that compute in bfloat16 (``Recipe.bfloat16``)."""
STRATEGIES = ("mirrored", "multiworker")
"""mirrored: MirroredStrategy on this machine; multiworker: MultiWorkerMirroredStrategy from TF_CONFIG."""


@dataclass(frozen=True)
class Recipe:
    """How to train: the model and its precision (``auto``: chosen by the CPU, ``precision.AUTO_PRECISION``),
    the input, the optimisation, the evaluation."""

    name: str
    description: str
    depth: int
    precision: str
    batch_norm: str
    filter_grad: str
    zero_init_residual: bool
    image_size: int
    batch_size: int
    epochs: int
    lr: float
    schedule: str
    momentum: float
    nesterov: bool
    weight_decay: float
    clip_norm: float
    label_smoothing: float
    augment: str
    test_flip: bool
    test_shift: int
    ema: float
    eval_every: int
    target_accuracy: float
    bfloat16: Mapping[str, Any] = field(default_factory=dict)
    """Settings that replace the ones above where the run computes in bfloat16 (``recipe_settings``): a faster
    step buys larger images in the same time."""

    def __post_init__(self) -> None:
        unknown = set(self.bfloat16) - set(BFLOAT16_SETTINGS)
        if unknown:  # the train command leaves only these flags' defaults to the run's precision
            raise ValueError(f"recipe {self.name}: bfloat16 settings {sorted(unknown)} not among {BFLOAT16_SETTINGS}")


def training_batch_norm(name: str, precision: str) -> str:
    """``name``, or for ``AUTO_BATCH_NORM``: ``fused`` where the run trains in bfloat16 (shown to train to Keras's
    accuracy: mixed_bf16 and amp_bf16, 3 seeds each), ``keras`` in float32 (fp32 with the fused layer, 5 seeds:
    0.9230 median against 0.9265, per seed -0.67 to +0.30 points: not yet shown to train as well, docs/train.md)."""
    if name != AUTO_BATCH_NORM:
        return name
    return "fused" if compute_dtype(precision) == "bfloat16" else "keras"


def training_filter_grad(name: str, flags: Collection[str], depth: int, image_size: int, layout: str) -> str:
    """``name``, or for ``AUTO_FILTER_GRAD``: ``gemm`` on a CPU with AVX-512 and without AMX, where oneDNN computes
    filter gradients with its older JIT kernels and the GEMM was measured to pay (Zen 4: the fast recipe's step
    1.58x faster in bf16, 1.06x in fp32, docs/models.md; Zen 5: 1.40x at 48x48 in bf16, 1.04x at 32x32 in fp32,
    docs/measurements/2026-12-07-zen5-first-look.md), if the layout is NHWC and some layer of the model
    takes it; ``conv`` elsewhere (AMX has oneDNN's brgemm backward-weights kernels; an AVX2-only CPU was not measured)."""
    if name != AUTO_FILTER_GRAD:
        return name
    pays = "avx512f" in flags and "amx_bf16" not in flags and layout == "nhwc" and gemm_layers(depth, image_size)
    return "gemm" if pays else "conv"


RECIPES = {recipe.name: recipe for recipe in (
    Recipe("fast", "this suite's recipe for time to accuracy on a CPU (docs/train.md, 'Time to accuracy'); precision "
                   "auto: mixed_bf16 on a CPU with bfloat16 instructions (avx512_bf16, amx_bf16), else fp32",
           depth=18, precision=AUTO_PRECISION, batch_norm=AUTO_BATCH_NORM, filter_grad=AUTO_FILTER_GRAD,
           zero_init_residual=False, image_size=32,
           batch_size=256, epochs=6, lr=0.2, schedule="cosine", momentum=0.9, nesterov=True, weight_decay=5e-4,
           clip_norm=5.0, label_smoothing=0.0, augment="none", test_flip=False, test_shift=0, ema=0.99,
           eval_every=1, target_accuracy=0.93, bfloat16={"image_size": 48}),
    Recipe("d2l", "the seed article's settings (Dive into Deep Learning, ResNet chapter): 96x96, plain SGD "
                  "at 0.05, batch 256, 10 epochs, float32",
           depth=18, precision="fp32", batch_norm="keras", filter_grad="conv", zero_init_residual=False, image_size=96,
           batch_size=256, epochs=10, lr=0.05, schedule="constant", momentum=0.0, nesterov=False, weight_decay=0.0,
           clip_norm=0.0, label_smoothing=0.0, augment="none", test_flip=False, test_shift=0, ema=0.0,
           eval_every=1, target_accuracy=0.91),
)}
DEFAULT_RECIPE = "fast"
RECIPE_SETTINGS = tuple(setting.name for setting in fields(Recipe)
                        if setting.name not in ("name", "description", "bfloat16"))


def recipe_settings(name: str, precision: str) -> dict[str, Any]:
    """Recipe ``name``'s settings for a run in ``precision`` (resolved, not ``auto``): its ``bfloat16`` settings
    replace the others where that precision computes in bfloat16."""
    require_choice("recipe", name, RECIPES)
    recipe = RECIPES[name]
    settings = {setting: getattr(recipe, setting) for setting in RECIPE_SETTINGS}
    if compute_dtype(precision) == "bfloat16":
        settings.update(recipe.bfloat16)
    return settings


PLAIN_TRAINING = {"batch_norm": "keras", "zero_init_residual": False, "lr": 0.2, "schedule": "cosine",
                  "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "clip_norm": 0.0, "label_smoothing": 0.0,
                  "augment": "none", "test_flip": False, "test_shift": 0, "ema": 0.0, "eval_every": 1}
"""The training every run used before recipes existed; a run_id names only what differs from it, so
the ids of those runs stay what they were (a run of the fast recipe in bfloat16, which uses the fused
batch norm, clips its gradients and evaluates a moving average of the weights, is named
``-fbn-clip5-ema0.99``)."""
_SUFFIXES = {"batch_norm": lambda value: "fbn" if value == "fused" else "",
             "zero_init_residual": lambda value: "zir" if value else "", "lr": "lr{:g}".format,
             "schedule": str, "momentum": "m{:g}".format, "nesterov": lambda value: "nesterov" if value else "plain",
             "weight_decay": "wd{:g}".format, "clip_norm": "clip{:g}".format, "label_smoothing": "ls{:g}".format,
             "augment": str, "test_flip": lambda value: "tta" if value else "notta", "test_shift": "tts{}".format,
             "ema": "ema{:g}".format, "eval_every": "ev{}".format}


def training_suffix(settings: Mapping[str, Any]) -> str:
    """``-fbn-ls0.1-flip-translate``: the settings of a training run (a result row or a config's
    fields) that differ from ``PLAIN_TRAINING``, in its order; a missing setting counts as plain."""
    parts = [_SUFFIXES[name](settings.get(name, plain)) for name, plain in PLAIN_TRAINING.items()
             if settings.get(name, plain) != plain]
    return "".join(f"-{part}" for part in parts if part)


def training_run_id(run: RunConfig, settings: Mapping[str, Any]) -> str:
    """The run_id of a training run: its model/step run_id, ``training_suffix``, replicas (``mw``:
    multi-worker) and epochs, from ``settings`` (a config's fields or a result row)."""
    spread = "mw" if settings.get("strategy") == "multiworker" else f"r{settings.get('replicas', 'auto')}"
    return f"{run.run_id}{training_suffix(settings)}-{spread}-e{settings.get('epochs')}"


@dataclass(frozen=True)
class TrainConfig:
    """A training run: the model/step config, the recipe's settings, and where and how to run it."""

    run: RunConfig
    recipe: str = DEFAULT_RECIPE
    batch_norm: str = RECIPES[DEFAULT_RECIPE].batch_norm
    zero_init_residual: bool = RECIPES[DEFAULT_RECIPE].zero_init_residual
    epochs: int = RECIPES[DEFAULT_RECIPE].epochs
    lr: float = RECIPES[DEFAULT_RECIPE].lr
    schedule: str = RECIPES[DEFAULT_RECIPE].schedule
    momentum: float = RECIPES[DEFAULT_RECIPE].momentum
    nesterov: bool = RECIPES[DEFAULT_RECIPE].nesterov
    weight_decay: float = RECIPES[DEFAULT_RECIPE].weight_decay
    clip_norm: float = RECIPES[DEFAULT_RECIPE].clip_norm
    label_smoothing: float = RECIPES[DEFAULT_RECIPE].label_smoothing
    augment: str = RECIPES[DEFAULT_RECIPE].augment
    test_flip: bool = RECIPES[DEFAULT_RECIPE].test_flip
    test_shift: int = RECIPES[DEFAULT_RECIPE].test_shift
    ema: float = RECIPES[DEFAULT_RECIPE].ema
    eval_every: int = RECIPES[DEFAULT_RECIPE].eval_every
    target_accuracy: float = RECIPES[DEFAULT_RECIPE].target_accuracy
    stop_at_target: bool = False
    replicas: int | str = "auto"
    seed: int = 0
    data_dir: str | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    strategy: str = "mirrored"

    def __post_init__(self) -> None:
        # frozen: the recipe's batch norm for this precision is set once, here
        object.__setattr__(self, "batch_norm", training_batch_norm(self.batch_norm, self.run.precision))
        require_choice("recipe", self.recipe, RECIPES)
        require_choice("strategy", self.strategy, STRATEGIES)
        if self.strategy == "multiworker" and self.replicas != "auto":
            raise UserError("--replicas must be 'auto' with --strategy multiworker: the replicas are the "
                            "workers in TF_CONFIG times each worker's devices")
        if self.epochs < 1:
            raise UserError(f"epochs must be at least 1, got {self.epochs}")
        if not 0 <= self.seed < 2**32:  # NumPy's and Python's generators take these
            raise UserError(f"seed must be in [0, 2**32), got {self.seed}")
        if is_graph_rewrite(self.run.precision) and not has_native_bf16(cpu_flags()):
            # grappler leaves the graph float32 where oneDNN has no bf16 kernels: the run would be mislabelled
            raise UserError(f"precision {self.run.precision} rewrites the graph to bfloat16 where oneDNN has bf16 "
                            f"kernels, and this CPU has no bfloat16 instructions ({', '.join(NATIVE_BF16_FLAGS)}): "
                            f"train in {', '.join(name for name in PRECISIONS if not is_graph_rewrite(name))}")
        for name in ("lr", "momentum", "weight_decay", "clip_norm", "label_smoothing", "ema", "target_accuracy"):
            if not math.isfinite(getattr(self, name)):
                raise UserError(f"{name.replace('_', ' ')} must be a finite number, got {getattr(self, name)}")
        if not self.lr > 0:
            raise UserError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise UserError(f"momentum must be in [0, 1), got {self.momentum}")
        require_choice("schedule", self.schedule, SCHEDULES)
        require_choice("batch norm", self.batch_norm, BATCH_NORMS)
        require_choice("augmentation", self.augment, AUGMENTATIONS)
        if self.weight_decay < 0:
            raise UserError(f"weight decay must be >= 0, got {self.weight_decay}")
        if self.clip_norm < 0:
            raise UserError(f"clip norm must be >= 0 (0: off), got {self.clip_norm}")
        if not 0 <= self.label_smoothing < 1:
            raise UserError(f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.ema < 1:
            raise UserError(f"ema must be in [0, 1) (0: off), got {self.ema}")
        if not 0 <= self.test_shift < self.run.image_size:  # a shift of the whole image leaves a blank view
            raise UserError(f"test shift must be >= 0 and below the image size {self.run.image_size} (pixels), "
                            f"got {self.test_shift}")
        if self.eval_every < 1:
            raise UserError(f"eval every must be at least 1 (epochs), got {self.eval_every}")
        if not 0 < self.target_accuracy <= 1:
            raise UserError(f"target accuracy must be in (0, 1], got {self.target_accuracy}")
        for name in ("limit_train", "limit_test"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"{name.replace('_', '-')} must be at least 1, got {value}")
        if isinstance(self.replicas, int):
            self.check_replicas(self.replicas)

    @classmethod
    def from_recipe(cls, name: str = DEFAULT_RECIPE, xla: bool = False, layout: str = "nhwc", onednn: bool = True,
                    **overrides: Any) -> TrainConfig:
        """The run of recipe ``name`` with ``overrides`` (any recipe setting or run field), in the recipe's settings
        for the run's precision (``recipe_settings``)."""
        require_choice("recipe", name, RECIPES)
        precision = training_precision(overrides.pop("precision", RECIPES[name].precision), cpu_flags())
        settings = {**recipe_settings(name, precision), **overrides, "precision": precision}
        settings["filter_grad"] = training_filter_grad(settings["filter_grad"], cpu_flags(), settings["depth"],
                                                       settings["image_size"], layout)
        run = RunConfig(depth=settings.pop("depth"), batch_size=settings.pop("batch_size"),
                        image_size=settings.pop("image_size"), precision=settings.pop("precision"),
                        filter_grad=settings.pop("filter_grad"), channels=1, num_classes=NUM_CLASSES, xla=xla,
                        layout=layout, onednn=onednn)
        return cls(run=run, recipe=name, **settings)

    def check_replicas(self, replicas: int) -> None:
        """The global batch must split evenly over the replicas."""
        if replicas < 1:
            raise UserError(f"replicas must be 'auto' or a positive integer, got {replicas}")
        if self.run.batch_size % replicas:
            raise UserError(f"global batch {self.run.batch_size} does not divide over {replicas} replicas; "
                            f"choose a multiple of {replicas}")

    @property
    def run_id(self) -> str:
        """The model/step run_id, the training settings that set it apart (``training_suffix``),
        replicas (or ``mw``: multi-worker) and epochs: ``resnet18-mixed_bf16-noxla-nhwc-b256-32-c1-k10-ema0.99-r2-e1``."""
        return training_run_id(self.run, asdict(self))

    def changed_settings(self) -> dict[str, Any]:
        """The recipe settings this run changed: ``{setting: value}``."""
        recipe, mine = recipe_settings(self.recipe, self.run.precision), self.as_dict()
        recipe["precision"] = training_precision(recipe["precision"], cpu_flags())
        # a recipe's auto settings stand for what they choose for this run's precision, depth, size and layout
        recipe["batch_norm"] = training_batch_norm(recipe["batch_norm"], self.run.precision)
        recipe["filter_grad"] = training_filter_grad(recipe["filter_grad"], cpu_flags(), self.run.depth,
                                                     self.run.image_size, self.run.layout)
        return {name: mine[name] for name in RECIPE_SETTINGS if mine[name] != recipe[name]}

    def as_dict(self) -> dict[str, Any]:
        fields_ = asdict(self)
        fields_.pop("run")
        return {**self.run.as_dict(), **fields_, "run_id": self.run_id}

    def argv(self) -> list[str]:
        """The ``python -m resnet_perf.train`` arguments that describe this run."""
        run = self.run
        args = ["--recipe", self.recipe, "--depth", run.depth, "--batch-norm", self.batch_norm,
                "--zero-init-residual", "on" if self.zero_init_residual else "off", "--epochs", self.epochs,
                "--batch-size", run.batch_size,
                "--replicas", self.replicas, "--precision", run.precision, "--xla", "on" if run.xla else "off",
                "--layout", run.layout, "--onednn", "on" if run.onednn else "off", "--filter-grad", run.filter_grad,
                "--image-size", run.image_size,
                "--lr", self.lr,
                "--schedule", self.schedule, "--momentum", self.momentum,
                "--nesterov", "on" if self.nesterov else "off", "--weight-decay", self.weight_decay,
                "--clip-norm", self.clip_norm,
                "--label-smoothing", self.label_smoothing, "--augment", self.augment,
                "--test-flip", "on" if self.test_flip else "off",
                "--test-shift", self.test_shift, "--ema", self.ema, "--eval-every", self.eval_every,
                "--target-accuracy", self.target_accuracy, "--seed", self.seed, "--strategy", self.strategy]
        if self.stop_at_target:
            args.append("--stop-at-target")
        for flag, value in (("--data-dir", self.data_dir), ("--limit-train", self.limit_train),
                            ("--limit-test", self.limit_test)):
            if value is not None:
                args += [flag, value]
        return [str(arg) for arg in args]
