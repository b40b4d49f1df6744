"""A run's model, optimizer and distributed steps: ``Trainer``, built in a tf.distribute strategy's scope.

The train step computes the per-replica gradients (under XLA when the run asks) and applies them with the
recipe's optimizer and learning-rate schedule (``learning_rate``), keeping a moving average of the weights
when the recipe asks (``ema``); the eval step counts correct predictions, over shifted or mirrored views when
the recipe asks (``test_shift``, ``test_flip``).  The run around them (epochs, evaluation, time to target) is
``resnet_perf.training.loop``.
"""
from __future__ import annotations

from resnet_perf.training.fashion_mnist import shift_images
from resnet_perf.training.recipes import WARMUP_FRACTION, TrainConfig


def learning_rate(config: TrainConfig, steps_per_epoch: int):
    """The recipe's schedule over this run's steps (``resnet_perf.models.objective.learning_rate_schedule``)."""
    from resnet_perf.models.objective import learning_rate_schedule  # loads TensorFlow

    total = config.epochs * steps_per_epoch
    return learning_rate_schedule(config.schedule, config.lr, total, max(1, int(WARMUP_FRACTION * total)))


class Trainer:
    """Model, optimizer and the distributed train/eval steps, built in the strategy's scope."""

    def __init__(self, config: TrainConfig, strategy, steps_per_epoch: int) -> None:
        import tensorflow as tf

        from resnet_perf.models.objective import is_loss_scaled, logits_and_loss, make_optimizer  # loads TensorFlow
        from resnet_perf.models.resnet import build_resnet

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
