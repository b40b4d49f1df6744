"""Fashion-MNIST training under a tf.distribute strategy, timed per epoch, to a target accuracy: ``train``.

Per epoch it records the training wall time and what it is made of (see ``EpochTiming``: the
steps' own times, waiting for input, the first step's tracing apart), images/s, mean training loss
and accuracy, the learning rate, and (after every ``eval_every``-th epoch and the last) the test
accuracy and the evaluation's time; the evaluation uses a moving average of the weights when the
recipe keeps one (``ema``), and the mean prediction over shifted or mirrored views when it asks
(``test_shift``, ``test_flip``).  **Time to target** is the wall time from the start of the first
training step to the end of the first evaluation whose test accuracy reached ``target_accuracy``
(as MLPerf and DAWNBench count it: evaluations included), with the evaluations' share and the first
step's (tracing) reported apart; ``stop_at_target`` ends the run there.

The input is one iterator over a repeated dataset for the whole run, ``steps_per_epoch`` batches
an epoch (as Keras's ``fit`` does).  An iterator per epoch ended each epoch in its destructor,
waiting for a background prefetch thread while the training ran beside it: tens of seconds per
epoch that no step accounted for.  The result file is rewritten (atomically) after every epoch, so
an interrupted run keeps the epochs it finished.

The parts: ``TrainingRun`` sets a run up and trains it, epoch by epoch (``epochs``), printing nothing;
``RunClock`` keeps its time to target; ``start_line`` and ``epoch_line`` are what the run shows; ``train``
writes and shows what ``epochs`` yields.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnet_perf.analysis.results import result_payload, write_results
from resnet_perf.cli import say
from resnet_perf.errors import UserError
from resnet_perf.files import check_output_file
from resnet_perf.machine.runtime import environment
from resnet_perf.machine.switches import ProcessSettings, apply_here
from resnet_perf.training.cluster import STARTUP_TIMEOUT_S, ClusterTask, current_task, wait_for_peers
from resnet_perf.training.epoch import EpochProgress, EpochTiming, run_epoch
from resnet_perf.training.fashion_mnist import load_split, locate, make_dataset
from resnet_perf.training.recipes import TrainConfig
from resnet_perf.training.strategies import make_multiworker_strategy, make_strategy
from resnet_perf.training.trainer import Trainer


@dataclass
class RunClock:
    """The run's totals and its time to the target, brought up to date once an epoch (bookkeeping
    only).  ``clock_s`` runs from the first step to the end of the epoch's evaluation (or of the
    epoch, when it has none)."""

    target_accuracy: float
    stop_at_target: bool
    epochs: int
    train_s: float = 0.0
    eval_s: float = 0.0
    time_to_target_s: float | None = None
    epochs_to_target: int | None = None
    eval_to_target_s: float | None = None
    stopped_at_target: bool = False
    completed: bool = False

    def add_epoch(self, epoch: int, train_s: float, eval_s: float | None, test_accuracy: float | None,
                  clock_s: float) -> None:
        self.train_s += train_s
        self.eval_s += eval_s or 0.0
        reached = (self.time_to_target_s is None and test_accuracy is not None
                   and test_accuracy >= self.target_accuracy)
        if reached:
            self.time_to_target_s, self.epochs_to_target, self.eval_to_target_s = clock_s, epoch, self.eval_s
        self.stopped_at_target = reached and self.stop_at_target
        self.completed = self.stopped_at_target or epoch == self.epochs

    def summary_fields(self) -> dict[str, Any]:
        return {"time_to_target_s": self.time_to_target_s, "epochs_to_target": self.epochs_to_target,
                "eval_to_target_s": self.eval_to_target_s, "stopped_at_target": self.stopped_at_target,
                "completed": self.completed, "total_train_time_s": self.train_s, "total_eval_time_s": self.eval_s}


def epoch_line(epoch: int, epochs: int, timing: EpochTiming, images_per_sec: float,
               test_accuracy: float | None) -> str:
    """The line shown after an epoch: its time and what it was made of, its pace, its accuracy."""
    return (f"epoch {epoch}/{epochs}: {timing.wall_s:.1f} s (steps {sum(timing.step_times_s):.1f} s, "
            f"first step {timing.compile_s:.1f} s, input wait {timing.data_wait_s:.1f} s, other "
            f"{timing.other_s:.1f} s), {images_per_sec:.0f} img/s, "
            + (f"test accuracy {test_accuracy:.4f}" if test_accuracy is not None else "not evaluated"))


def start_line(run_id: str, summary: dict[str, Any], epochs: int) -> str:
    """The line shown before the first step: what trains where, on which data, for how long."""
    return (f"training {run_id} on {summary['replicas']} replica(s) {summary['devices']} as {summary['task']} of "
            f"{len(summary['workers'])} worker(s): {summary['train_images']} train / {summary['test_images']} test "
            f"images from {summary['data_dir']}, {epochs} epoch(s) of {summary['steps_per_epoch']} steps")


@dataclass
class EpochOutcome:
    """What ``TrainingRun.epochs`` yields after an epoch: its timing and row, and the run's result so far."""

    epoch: int
    timing: EpochTiming
    row: dict[str, Any]
    test_accuracy: float | None
    payload: dict[str, Any]
    stopped_at_target: bool


def _epoch_row(config: TrainConfig, replicas: int, epoch: int, **metrics: Any) -> dict[str, Any]:
    return {"bench": "train", **config.as_dict(), "replicas": replicas, "epoch": epoch, **metrics}


def _auto_shard_by_data(dataset):
    """Multi-worker input: each worker reads the in-memory arrays and keeps its share of each batch
    (sharding by file needs files; this says so instead of TensorFlow guessing and warning)."""
    import tensorflow as tf  # loaded by now; a module-level import would load it before the run's settings

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _load_data(config: TrainConfig) -> tuple[Path, Any, Any]:
    """The data folder and its train and test splits, checked to make at least one batch and one
    test image before anything is built."""
    folder = locate(config.data_dir)
    train_split = load_split(folder, "train", config.limit_train)
    test_split = load_split(folder, "test", config.limit_test)
    if not len(test_split):  # the accuracy is a share of the test images: found before the epoch, not after
        raise UserError(f"the test split in {folder} holds no images: nothing to measure accuracy on")
    if len(train_split) < config.run.batch_size:
        raise UserError(f"{len(train_split)} training images make no full batch of {config.run.batch_size}")
    return folder, train_split, test_split


def _input_iterators(config: TrainConfig, strategy, train_split, test_split) -> tuple[Any, Any]:
    """One iterator over the repeated, shuffled training batches and one over the test batches, for
    the whole run, distributed by the strategy."""
    run = config.run
    train = make_dataset(train_split, batch_size=run.batch_size, image_size=run.image_size, layout=run.layout,
                         training=True, seed=config.seed, augment=config.augment)
    test = make_dataset(test_split, batch_size=run.batch_size, image_size=run.image_size, layout=run.layout,
                        training=False)
    return tuple(iter(strategy.experimental_distribute_dataset(_auto_shard_by_data(dataset)))
                 for dataset in (train, test))


class TrainingRun:
    """A run set up to train (the strategy, the data and its iterators, the model and its steps) and, through
    ``epochs``, trained: it measures and keeps the books, and shows or writes nothing.

    ``task``: this worker's place in a multi-worker cluster (``None`` on one machine); the constructor waits at
    most ``startup_timeout_s`` for the other workers, saying so through ``report``.  ``keep_inputs``: a list
    that outlives the run, to which its input iterators are added, for a process that ends without destroying
    them (``python -m resnet_perf.train``).  Destroying one waits for its ``MultiDeviceIterator``'s prefetch
    thread: on the AMD VM 40-60 s after a finished run, about 2 minutes after SIGTERM (``py-spy dump
    --native``: ``~MultiDeviceIterator`` in ``UnboundedThreadPool::LogicalThreadWrapper::~LogicalThreadWrapper``);
    without it they go with the run, as any Python caller expects."""

    def __init__(self, config: TrainConfig, task: ClusterTask | None, startup_timeout_s: float = STARTUP_TIMEOUT_S,
                 keep_inputs: list | None = None, report: Callable[[str], None] = say) -> None:
        if task:  # TensorFlow's own wait for the other workers has no deadline and ignores Ctrl-C
            wait_for_peers(task, startup_timeout_s, report=report)
        # Before TensorFlow loads, which reads oneDNN's variables once: the run's oneDNN setting, not whatever the
        # environment holds, or a UserError where TensorFlow is loaded already with another (a run is never recorded
        # under a setting it did not run with). amp_bf16: grappler's bf16 rewrite of the float32 model, an option of
        # the whole process, set before anything runs (this process trains one configuration)
        apply_here(ProcessSettings.of(config.run))
        import keras  # here, after the settings: loading Keras loads TensorFlow

        self.config, self.task, self.report = config, task, report
        self.strategy = make_multiworker_strategy() if task else make_strategy(config.replicas)
        self.replicas = self.strategy.num_replicas_in_sync
        config.check_replicas(self.replicas)
        self.worker_names = task.worker_names if task else ["local"]
        folder, train_split, self.test_split = _load_data(config)
        self.steps_per_epoch = len(train_split) // config.run.batch_size
        self.clock = RunClock(config.target_accuracy, config.stop_at_target, config.epochs)
        self.summary: dict[str, Any] = {
            "strategy": config.strategy, "replicas": self.replicas, "workers": self.worker_names,
            "task": task.name if task else "local", "devices": list(self.strategy.extended.worker_devices),
            "data_dir": str(folder), "data_verified": train_split.verified and self.test_split.verified,
            "train_images": len(train_split), "test_images": len(self.test_split),
            "steps_per_epoch": self.steps_per_epoch, "recipe": config.recipe,
            "changed_settings": config.changed_settings(), "final_test_accuracy": None, **self.clock.summary_fields()}
        if task:
            self.summary["cluster"] = task.cluster
        keras.utils.set_random_seed(config.seed)
        self.train_batches, self.test_batches = _input_iterators(config, self.strategy, train_split, self.test_split)
        if keep_inputs is not None:
            keep_inputs.extend((self.train_batches, self.test_batches))
        self.trainer = Trainer(config, self.strategy, self.steps_per_epoch)

    def start_line(self) -> str:
        return start_line(self.config.run.run_id, self.summary, self.config.epochs)

    def epochs(self) -> Iterator[EpochOutcome]:
        """Train epoch after epoch, yielding each one's outcome, until the last epoch or the target (when the run
        stops there)."""
        config, trainer, clock, summary = self.config, self.trainer, self.clock, self.summary
        batch_size = config.run.batch_size
        test_steps = math.ceil(len(self.test_split) / batch_size)
        rank = self.task.rank if self.task else 0
        rows: list[dict[str, Any]] = []
        started = time.perf_counter()
        for epoch in range(1, config.epochs + 1):
            progress = EpochProgress(self.steps_per_epoch, write=self.report)
            timing, metrics = run_epoch(trainer.train_step, self.train_batches, self.steps_per_epoch, batch_size,
                                        epoch == 1, progress, sync=not trainer.multiworker)
            worker_times = trainer.per_worker(timing.wall_s, rank, len(self.worker_names))
            test_accuracy = eval_seconds = None
            if epoch % config.eval_every == 0 or epoch == config.epochs:
                eval_start = time.perf_counter()
                test_accuracy = trainer.evaluate(self.test_batches, test_steps) / len(self.test_split)
                eval_seconds = time.perf_counter() - eval_start
                summary["final_test_accuracy"] = test_accuracy
            clock_s = time.perf_counter() - started
            clock.add_epoch(epoch, timing.wall_s, eval_seconds, test_accuracy, clock_s)
            seen = self.steps_per_epoch * batch_size
            rows.append(_epoch_row(config, self.replicas, epoch, **timing.as_row(batch_size), **metrics,
                                   test_accuracy=test_accuracy, eval_time_s=eval_seconds,
                                   lr_end=trainer.current_lr(), cumulative_train_time_s=clock.train_s,
                                   clock_s=clock_s, workers=self.worker_names, worker_epoch_time_s=worker_times,
                                   # each worker trains on its 1/N of every global batch
                                   worker_images_per_sec=[seen / len(self.worker_names) / t for t in worker_times]))
            if epoch == 1:
                summary["compile_s"] = timing.compile_s
            summary.update(clock.summary_fields(), total_time_s=time.perf_counter() - started)
            yield EpochOutcome(epoch, timing, rows[-1], test_accuracy,
                               result_payload("train", rows, environment(), summary=summary), clock.stopped_at_target)
            if clock.stopped_at_target:
                return


def train(config: TrainConfig, output: Path, startup_timeout_s: float = STARTUP_TIMEOUT_S,
          keep_inputs: list | None = None, report: Callable[[str], None] = say) -> dict[str, Any]:
    """Train, showing each epoch through ``report`` and writing ``output`` after it (the chief only, multi-worker);
    return the final payload.  A multi-worker run waits at most ``startup_timeout_s`` for the other workers to
    start; ``keep_inputs``: see ``TrainingRun``."""
    task = current_task() if config.strategy == "multiworker" else None  # checked before TensorFlow starts
    writes_results = task is None or task.is_chief
    if writes_results:  # fail early if unwritable, without touching an existing --output before an epoch is done
        check_output_file(output)
    run = TrainingRun(config, task, startup_timeout_s, keep_inputs, report)
    report(run.start_line())
    payload: dict[str, Any] = {}
    for outcome in run.epochs():
        report(epoch_line(outcome.epoch, config.epochs, outcome.timing, outcome.row["images_per_sec"],
                          outcome.test_accuracy))
        payload = outcome.payload
        if writes_results:
            write_results(output, payload)
        if outcome.stopped_at_target:
            report(f"stopped at the target: test accuracy {outcome.test_accuracy:.4f} >= {config.target_accuracy}")
    return payload
