"""Fashion-MNIST training under a tf.distribute strategy, timed per epoch, to a target accuracy.

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
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnet_perf.errors import UserError
from resnet_perf.machine.cpu_usage import CpuCounters, read_counters, row_fields
from resnet_perf.training.cluster import STARTUP_TIMEOUT_S, current_task, wait_for_peers
from resnet_perf.training.recipes import WARMUP_FRACTION, TrainConfig

# Into a pipe the bar prints only at an epoch's end: a line this often in between shows a long epoch
# (an epoch of the d2l recipe takes 11-20 minutes on 2 cores: 650 s on Zen 4, 910-1,175 s on Zen 3) is running.
PIPE_PROGRESS_S = 60.0


def learning_rate(config: TrainConfig, steps_per_epoch: int):
    """The recipe's schedule over this run's steps (``resnet_perf.models.objective.learning_rate_schedule``)."""
    from resnet_perf.models.objective import learning_rate_schedule

    total = config.epochs * steps_per_epoch
    return learning_rate_schedule(config.schedule, config.lr, total, max(1, int(WARMUP_FRACTION * total)))


class Trainer:
    """Model, optimizer and the distributed train/eval steps, built in the strategy's scope."""

    def __init__(self, config: TrainConfig, strategy, steps_per_epoch: int) -> None:
        import tensorflow as tf

        from resnet_perf.models.objective import is_loss_scaled, logits_and_loss, make_optimizer
        from resnet_perf.models.resnet import build_resnet
        from resnet_perf.training.fashion_mnist import shift_images

        run = config.run
        self.config, self.strategy = config, strategy
        self.multiworker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        with strategy.scope():
            self.model = build_resnet(run.depth, num_classes=run.num_classes, input_shape=run.input_shape,
                                      data_format=run.data_format, precision=run.precision,
                                      batch_norm=config.batch_norm, zero_init_residual=config.zero_init_residual,
                                      filter_grad=run.filter_grad)
            optimizer = make_optimizer(run.precision, learning_rate(config, steps_per_epoch), momentum=config.momentum,
                                       nesterov=config.nesterov, weight_decay=config.weight_decay,
                                       clip_norm=config.clip_norm)
            optimizer.build(self.model.trainable_variables)
            self.optimizer = optimizer
        scaled = is_loss_scaled(optimizer)
        model, global_batch = self.model, run.batch_size

        # XLA compiles the per-replica forward and backward; the update stays outside, because
        # MirroredStrategy's cross-replica gradient sum cannot run inside an XLA cluster.
        @tf.function(jit_compile=run.xla)
        def gradients(images, labels):
            with tf.GradientTape() as tape:
                logits, loss = logits_and_loss(model, images, labels, global_batch_size=global_batch,
                                               label_smoothing=config.label_smoothing)
                objective = optimizer.scale_loss(loss) if scaled else loss
            correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.int32))
            return tape.gradient(objective, model.trainable_variables), loss, correct

        def replica_train(images, labels):
            grads, loss, correct = gradients(images, labels)
            optimizer.apply(grads, model.trainable_variables)
            return loss, correct

        height_axis, width_axis = (2, 3) if run.layout == "nchw" else (1, 2)
        shift = config.test_shift
        # The views whose mean prediction is evaluated: the image, its 4 shifts (--test-shift), and
        # each one's mirror image (--test-flip).
        offsets = [(0, 0)] + ([(shift, 0), (-shift, 0), (0, shift), (0, -shift)] if shift else [])

        def evaluated_logits(images):
            views = [shift_images(images, rows, columns, height_axis, width_axis) if rows or columns else images
                     for rows, columns in offsets]
            if config.test_flip:
                views += [tf.reverse(view, [width_axis]) for view in views]
            return tf.add_n([tf.cast(model(view, training=False), tf.float32) for view in views])

        @tf.function(jit_compile=run.xla)
        def replica_eval(images, labels):
            logits = evaluated_logits(images)
            return tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.int32))

        variables = model.trainable_variables
        self.swap_averages = None
        if config.ema:
            with strategy.scope():
                averages = [tf.Variable(variable.value, trainable=False) for variable in variables]

            @tf.function
            def swap_averages():
                """The model's weights and their moving averages change places (twice: back as they were)."""
                for average, variable in zip(averages, variables):
                    weights = tf.identity(variable.value)
                    variable.assign(average)
                    average.assign(weights)

            self.swap_averages = swap_averages

        @tf.function
        def train_step(batch):
            loss, correct = strategy.run(replica_train, args=batch)
            if config.ema:  # after the update; the decay is lower for the first steps, as tf.train's EMA does
                step = tf.cast(optimizer.iterations, tf.float32)
                decay = tf.minimum(config.ema, (1.0 + step) / (10.0 + step))
                for average, variable in zip(averages, variables):
                    average.assign(decay * average + (1.0 - decay) * variable.value)
            return (strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
                    strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None))

        @tf.function
        def eval_step(batch):
            return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_eval, args=batch), axis=None)

        self.train_step, self.eval_step = train_step, eval_step
        self.evaluated_logits = tf.function(evaluated_logits)  # of one replica's batch, as the evaluation sums them

    def evaluate(self, batches, steps: int) -> int:
        """Correct predictions over ``steps`` test batches, with the weights' moving averages when
        the recipe keeps them (the batch-norm statistics are the trained model's own)."""
        if self.swap_averages:
            self.swap_averages()
        try:
            return sum(int(self.eval_step(next(batches))) for _ in range(steps))
        finally:
            if self.swap_averages:
                self.swap_averages()

    def per_worker(self, value: float, rank: int, workers: int) -> list[float]:
        """``value`` of every worker, in rank order: each contributes its own through an all-reduce.

        Every worker must call this at the same point (it is a collective).
        """
        import tensorflow as tf

        if workers == 1:  # nothing to gather (and strategy.run, called eagerly, warns of its overhead)
            return [value]
        local_replicas = len(self.strategy.extended.worker_devices)
        # Each local replica adds value / local_replicas at this worker's position: the sum is value.
        contribution = tf.one_hot(rank, workers, dtype=tf.float64) * (value / local_replicas)
        summed = self.strategy.run(self._sum_over_replicas, args=(contribution,))
        return [float(v) for v in self.strategy.experimental_local_results(summed)[0].numpy()]

    @staticmethod
    def _sum_over_replicas(value):
        import tensorflow as tf

        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, value)

    def current_lr(self) -> float:
        lr = self.optimizer.learning_rate
        return float(lr.numpy() if hasattr(lr, "numpy") else lr)


@dataclass
class EpochTiming:
    """Where an epoch's wall time went: ``wall_s = compile_s + sum(step_times_s) + data_wait_s + other_s``.

    ``compile_s``: the run's first step (tracing, XLA), in the first epoch only; ``step_times_s``:
    every other step, each finished (devices synced, results fetched); ``data_wait_s``: waiting for
    the next batch; ``other_s``: the rest (progress bar, Python); ``cpu``: what the CPU gave the
    epoch after its compile step (this process's CPU time, the machine's steal and throttling).
    """

    wall_s: float
    compile_s: float
    step_times_s: list[float]
    data_wait_s: float
    cpu: CpuCounters | None = None

    @property
    def other_s(self) -> float:
        return self.wall_s - self.compile_s - sum(self.step_times_s) - self.data_wait_s

    def as_row(self, batch_size: int) -> dict[str, Any]:
        """The epoch's timing fields; images/s over the timed steps only (the compile step left out);
        the CPU's fields as a step row has them (``resnet_perf.machine.cpu_usage.row_fields``)."""
        timed = self.wall_s - self.compile_s
        return {"epoch_time_s": self.wall_s, "compile_s": self.compile_s, "step_time_sum_s": sum(self.step_times_s),
                "data_wait_s": self.data_wait_s, "other_s": self.other_s, "step_times_s": self.step_times_s,
                "images_per_sec": len(self.step_times_s) * batch_size / timed if timed > 0 else None,
                **(row_fields([self.cpu]) if self.cpu else {})}


def _run_epoch(trainer: Trainer, batches, steps: int, batch_size: int, first_epoch: bool) -> tuple[EpochTiming, dict]:
    """Run ``steps`` training steps from the iterator ``batches``; return their timing and the epoch's
    mean loss and accuracy, with every step's loss (a spike shows where it began)."""
    import keras

    from resnet_perf.bench.timing import finish

    # A live bar on a terminal; into a pipe (CI logs, the launcher) one line per epoch, not per step,
    # and a progress line every PIPE_PROGRESS_S.
    live = sys.stdout.isatty()
    bar = keras.utils.Progbar(steps, stateful_metrics=["loss", "acc", "img/s"], verbose=1 if live else 2)
    timing = EpochTiming(wall_s=0.0, compile_s=0.0, step_times_s=[], data_wait_s=0.0)
    losses: list[float] = []
    loss_sum = correct = seen = 0.0
    epoch_start = time.perf_counter()
    next_line = epoch_start + PIPE_PROGRESS_S
    before = read_counters()
    for step in range(1, steps + 1):
        asked = time.perf_counter()
        batch = next(batches)
        started = time.perf_counter()
        loss, right = finish(trainer.train_step(batch), sync=not trainer.multiworker)
        ended = time.perf_counter()
        timing.data_wait_s += started - asked
        if first_epoch and step == 1:
            timing.compile_s = ended - started
            before = read_counters()  # the compile step's CPU time is none of the timed steps'
        else:
            timing.step_times_s.append(ended - started)
        loss = float(loss)
        if not math.isfinite(loss):
            raise UserError(f"the training loss became {loss} at step {step} of this epoch; the epochs "
                            f"before it are kept (a lower --lr, a --clip-norm, or fp32 may train)")
        losses.append(loss)
        loss_sum += loss
        correct += int(right)
        seen += batch_size
        bar.update(step, [("loss", loss_sum / step), ("acc", correct / seen), ("img/s", seen / (ended - epoch_start))])
        if not live and step < steps and ended >= next_line:
            print(f"  step {step}/{steps}: {ended - epoch_start:.0f} s, loss {loss_sum / step:.4f}, "
                  f"acc {correct / seen:.4f}, {seen / (ended - epoch_start):.0f} img/s", flush=True)
            next_line = ended + PIPE_PROGRESS_S
    timing.wall_s = time.perf_counter() - epoch_start
    timing.cpu = read_counters().since(before)
    return timing, {"train_loss": loss_sum / steps, "train_accuracy": correct / seen, "step_losses": losses}


def _epoch_row(config: TrainConfig, replicas: int, epoch: int, **metrics: Any) -> dict[str, Any]:
    return {"bench": "train", **config.as_dict(), "replicas": replicas, "epoch": epoch, **metrics}


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
    """The line printed after an epoch: its time and what it was made of, its pace, its accuracy."""
    return (f"epoch {epoch}/{epochs}: {timing.wall_s:.1f} s (steps {sum(timing.step_times_s):.1f} s, "
            f"first step {timing.compile_s:.1f} s, input wait {timing.data_wait_s:.1f} s, other "
            f"{timing.other_s:.1f} s), {images_per_sec:.0f} img/s, "
            + (f"test accuracy {test_accuracy:.4f}" if test_accuracy is not None else "not evaluated"))


def _auto_shard_by_data(dataset):
    """Multi-worker input: each worker reads the in-memory arrays and keeps its share of each batch
    (sharding by file needs files; this says so instead of TensorFlow guessing and warning)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _load_data(config: TrainConfig) -> tuple[Path, Any, Any]:
    """The data folder and its train and test splits, checked to make at least one batch and one
    test image before anything is built."""
    from resnet_perf.training.fashion_mnist import load_split, locate

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
    from resnet_perf.training.fashion_mnist import make_dataset

    run = config.run
    train = make_dataset(train_split, batch_size=run.batch_size, image_size=run.image_size, layout=run.layout,
                         training=True, seed=config.seed, augment=config.augment)
    test = make_dataset(test_split, batch_size=run.batch_size, image_size=run.image_size, layout=run.layout,
                        training=False)
    return tuple(iter(strategy.experimental_distribute_dataset(_auto_shard_by_data(dataset)))
                 for dataset in (train, test))


def train(config: TrainConfig, output: Path, startup_timeout_s: float = STARTUP_TIMEOUT_S,
          keep_inputs: list | None = None) -> dict[str, Any]:
    """Train, writing ``output`` after every epoch (the chief only, multi-worker); return the final
    payload.  A multi-worker run waits at most ``startup_timeout_s`` for the other workers to start.

    ``keep_inputs``: a list that outlives the run, to which its input iterators are added, for a
    process that ends without destroying them (``python -m resnet_perf.train``).  Destroying one
    waits for its ``MultiDeviceIterator``'s prefetch thread: on the AMD VM 40-60 s after a finished
    run, about 2 minutes after SIGTERM (``py-spy dump --native``: ``~MultiDeviceIterator`` in
    ``UnboundedThreadPool::LogicalThreadWrapper::~LogicalThreadWrapper``); without it they go with
    the run, as any Python caller expects."""
    from resnet_perf.analysis.results import result_payload, write_results
    from resnet_perf.files import check_output_file

    task = current_task() if config.strategy == "multiworker" else None  # checked before TensorFlow starts
    writes_results = task is None or task.is_chief
    if writes_results:  # fail early if unwritable, without touching an existing --output before an epoch is done
        check_output_file(output)
    if task:  # TensorFlow's own wait for the other workers has no deadline and ignores Ctrl-C
        wait_for_peers(task, startup_timeout_s, report=print)
    from resnet_perf.machine.switches import ProcessSettings, apply_here

    # Before TensorFlow loads, which reads oneDNN's variables once: the run's oneDNN setting, not whatever the
    # environment holds, or a UserError where TensorFlow is loaded already with another (a run is never recorded
    # under a setting it did not run with). amp_bf16: grappler's bf16 rewrite of the float32 model, an option of
    # the whole process, set before anything runs (this process trains one configuration)
    apply_here(ProcessSettings.of(config.run))
    import keras

    from resnet_perf.machine.runtime import environment
    from resnet_perf.training.strategies import make_multiworker_strategy, make_strategy

    strategy = make_multiworker_strategy() if task else make_strategy(config.replicas)
    replicas = strategy.num_replicas_in_sync
    config.check_replicas(replicas)
    worker_names = task.worker_names if task else ["local"]
    run = config.run
    folder, train_split, test_split = _load_data(config)
    steps_per_epoch = len(train_split) // run.batch_size
    clock = RunClock(config.target_accuracy, config.stop_at_target, config.epochs)
    summary: dict[str, Any] = {"strategy": config.strategy, "replicas": replicas, "workers": worker_names,
                               "task": task.name if task else "local",
                               "devices": list(strategy.extended.worker_devices),
                               "data_dir": str(folder), "data_verified": train_split.verified and test_split.verified,
                               "train_images": len(train_split), "test_images": len(test_split),
                               "steps_per_epoch": steps_per_epoch, "recipe": config.recipe,
                               "changed_settings": config.changed_settings(), "final_test_accuracy": None,
                               **clock.summary_fields()}
    if task:
        summary["cluster"] = task.cluster
    keras.utils.set_random_seed(config.seed)
    train_batches, test_batches = _input_iterators(config, strategy, train_split, test_split)
    test_steps = math.ceil(len(test_split) / run.batch_size)
    if keep_inputs is not None:
        keep_inputs.extend((train_batches, test_batches))
    trainer = Trainer(config, strategy, steps_per_epoch)

    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    print(f"training {run.run_id} on {replicas} replica(s) {summary['devices']} as {summary['task']} of "
          f"{len(worker_names)} worker(s): {len(train_split)} train / {len(test_split)} test images from {folder}, "
          f"{config.epochs} epoch(s) of {steps_per_epoch} steps", flush=True)
    for epoch in range(1, config.epochs + 1):
        timing, metrics = _run_epoch(trainer, train_batches, steps_per_epoch, run.batch_size, first_epoch=epoch == 1)
        worker_times = trainer.per_worker(timing.wall_s, task.rank if task else 0, len(worker_names))
        test_accuracy = eval_seconds = None
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            eval_start = time.perf_counter()
            test_accuracy = trainer.evaluate(test_batches, test_steps) / len(test_split)
            eval_seconds = time.perf_counter() - eval_start
            summary["final_test_accuracy"] = test_accuracy
        clock_s = time.perf_counter() - started
        clock.add_epoch(epoch, timing.wall_s, eval_seconds, test_accuracy, clock_s)
        seen = steps_per_epoch * run.batch_size
        rows.append(_epoch_row(config, replicas, epoch, **timing.as_row(run.batch_size), **metrics,
                               test_accuracy=test_accuracy, eval_time_s=eval_seconds, lr_end=trainer.current_lr(),
                               cumulative_train_time_s=clock.train_s, clock_s=clock_s, workers=worker_names,
                               worker_epoch_time_s=worker_times,
                               # each worker trains on its 1/N of every global batch
                               worker_images_per_sec=[seen / len(worker_names) / t for t in worker_times]))
        if epoch == 1:
            summary["compile_s"] = timing.compile_s
        summary.update(clock.summary_fields(), total_time_s=time.perf_counter() - started)
        print(epoch_line(epoch, config.epochs, timing, rows[-1]["images_per_sec"], test_accuracy), flush=True)
        payload = result_payload("train", rows, environment(), summary=summary)
        if writes_results:
            write_results(output, payload)
        if clock.stopped_at_target:
            print(f"stopped at the target: test accuracy {test_accuracy:.4f} >= {config.target_accuracy}")
            break
    return payload
