"""RunConfig: one benchmark configuration, validated when it is made.

Its ``run_id`` (``resnet50-mixed_bf16-xla-nhwc-b32-224``) is the pytest id, the key of a result
row and the stem of file names.  This module does not import TensorFlow, so a bad configuration
is rejected before anything slow starts.
"""
from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from resnet_perf.errors import UserError, require_choice
from resnet_perf.precision import check_precision, is_graph_rewrite
from resnet_perf.specs import TOTAL_STRIDE, get_spec

ON_OFF = {"on": True, "off": False}
"""How on/off switches (``--xla``, ``--onednn``) read on the command line."""
ON_OFF_FIELDS = ("xla", "onednn")
"""RunConfig fields that are on/off switches."""

MODES = ("forward", "train_forward", "fwd_bwd", "train")
"""The steps a benchmark times (see ``resnet_perf.bench.steps``): ``forward`` is inference;
``train_forward`` the forward pass of a training step (batch statistics) with its loss, the part of
``fwd_bwd`` before the gradients, so ``backward = fwd_bwd - train_forward``."""
BACKWARD_MODES = ("fwd_bwd", "train")
"""Steps that also run the backward pass."""

LAYOUTS: dict[str, str] = {"nhwc": "channels_last", "nchw": "channels_first"}
"""Layout names on the command line and in configs -> Keras ``data_format``."""
BATCH_NORMS = ("keras", "fused")
"""keras: ``keras.layers.BatchNormalization``; fused: the same function as one TensorFlow op each
way (``resnet_perf.models.fused_bn.FusedBatchNorm``), faster on a CPU."""
FILTER_GRADS = ("conv", "gemm")
"""How the convolutions' filter gradients are computed: conv, TensorFlow's own (oneDNN's backward-weights
convolution); gemm, through oneDNN's brgemm kernels in the layers with few pixels, where its non-AMX
backward-weights kernels lose: one GEMM over the input's patches in float32, a forward convolution in
bfloat16 (``resnet_perf.models.gemm_filter_grad``)."""
GEMM_MAX_OUTPUT_PIXELS = 7 * 7
"""Output height x width up to which a layer's patches are small enough to pay: ResNet-50's last stage at 224x224."""
GEMM_MIN_FILTERS = 256
"""Output channels from which the GEMM's work outgrows the patches' copy (each patch value is used this often)."""
BF16_MAX_OUTPUT_PIXELS = 4 * 4
"""In bfloat16, output height x width up to which the forward-convolution form pays whatever the channels: the
training recipe's stages 2 to 4 when it trained at 32x32 (ResNet-18); at 48x48 stage 2 (6x6) gains nothing
measurable from it (docs/measurements/2026-12-07-zen4-recipe-image-size.md)."""
BN_ROWS_MIN_CHANNELS = 256
BN_ROWS_MIN_IMAGE_VALUES = 100_000
"""From these channels and values per image (height x width x channels) the fused batch norm hands oneDNN its
NHWC input as (N x H x W, 1, 1, C) rows (``batch_norm_as_rows``)."""
GEMM_FILTER_GRADIENT_SCOPE = "filter_gradient_gemm"
"""The name scope of the GEMM filter gradients' ops, by which a trace's breakdown counts them as filter gradients."""
GEMM_NEEDS_NHWC = "filter gradient gemm takes the NHWC layout (TensorFlow's extract_patches is NHWC only)"
FPMATH_MODES: dict[str, str | None] = {"default": None, "bf16": "BF16"}
"""oneDNN's math mode for float32 primitives (``ONEDNN_DEFAULT_FPMATH_MODE``): ``bf16`` lets oneDNN
compute float32 convolutions and matmuls with bfloat16 multiplies (float32 in and out)."""
AUTO_THREADS = "auto"
"""TensorFlow's own thread pool sizes (one intra-op thread per core)."""


MODELS: dict[str, tuple[int, ...]] = {
    "resnet_perf": (18, 34, 50, 101, 152),
    # The peer row: keras.applications.ResNet50/101/152 (ResNet v1, stride on the first 1x1).
    "keras": (50, 101, 152),
}


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class RunConfig:
    """What to build and how to run it: model, input, precision, XLA, layout and step counts.

    ``steps`` timed steps per round, ``rounds`` rounds (the suite measures all its cases round by
    round: ``resnet_perf.bench.rounds``); one-off measurements (profile, interleave) have one round.

    ``model`` is ``resnet_perf`` (this package's ResNet v1.5) or ``keras`` (the
    ``keras.applications`` peer, for side-by-side rows); ``batch_norm`` picks our model's batch
    norm layer (``BATCH_NORMS``), ``filter_grad`` how its convolutions' filter gradients are computed
    (``FILTER_GRADS``).

    The CPU switches ``threads`` (``INTRA:INTER`` thread pool sizes, or ``auto``), ``onednn``
    (TensorFlow's oneDNN kernels) and ``fpmath`` (``FPMATH_MODES``) are settings of a whole process,
    as is the ``amp_bf16`` precision: ``resnet_perf.machine.switches`` applies them.
    """

    depth: int = 50
    batch_size: int = 32
    image_size: int = 224
    channels: int = 3
    num_classes: int = 1000
    precision: str = "fp32"
    xla: bool = False
    layout: str = "nhwc"
    warmup: int = 3
    steps: int = 10
    rounds: int = 1
    model: str = "resnet_perf"
    batch_norm: str = "keras"
    filter_grad: str = "conv"
    threads: str = AUTO_THREADS
    onednn: bool = True
    fpmath: str = "default"

    def __post_init__(self) -> None:
        get_spec(self.depth)
        require_choice("model", self.model, MODELS)
        if self.depth not in MODELS[self.model]:
            depths = ", ".join(map(str, MODELS[self.model]))
            raise UserError(f"model {self.model!r} has no ResNet-{self.depth}: it builds depths {depths}")
        _check_int("batch_size", self.batch_size, 1)
        _check_int("image_size", self.image_size, TOTAL_STRIDE)
        _check_int("channels", self.channels, 1)
        _check_int("num_classes", self.num_classes, 1)
        check_precision(self.precision)
        if not isinstance(self.xla, bool):
            raise UserError(f"xla must be True or False, got {self.xla!r}")
        require_choice("layout", self.layout, LAYOUTS)
        require_choice("batch norm", self.batch_norm, BATCH_NORMS)
        if self.batch_norm != "keras" and self.model != "resnet_perf":
            raise UserError(f"batch norm {self.batch_norm!r} is a variant of this package's model, not of {self.model!r}")
        require_choice("filter gradient", self.filter_grad, FILTER_GRADS)
        if self.filter_grad != "conv" and self.model != "resnet_perf":
            raise UserError(f"filter gradient {self.filter_grad!r} is a variant of this package's model, "
                            f"not of {self.model!r}")
        if self.filter_grad == "gemm" and self.layout != "nhwc":
            raise UserError(GEMM_NEEDS_NHWC)
        if self.filter_grad == "gemm" and not gemm_layers(self.depth, self.image_size):
            raise UserError(gemm_changes_nothing(self.depth, self.image_size, self.image_size))
        parse_threads(self.threads)
        if not isinstance(self.onednn, bool):
            raise UserError(f"onednn must be True or False, got {self.onednn!r}")
        require_choice("fpmath mode", self.fpmath, FPMATH_MODES)
        if not self.onednn and self.fpmath != "default":
            raise UserError("fpmath is a oneDNN setting: it needs onednn on")
        if not self.onednn and is_graph_rewrite(self.precision):
            raise UserError("amp_bf16 is grappler's rewrite for oneDNN's bf16 kernels: it needs onednn on")
        _check_int("warmup", self.warmup, 0)
        _check_int("steps", self.steps, 1)
        _check_int("rounds", self.rounds, 1)

    @property
    def run_id(self) -> str:
        """``resnet{depth}-{precision}-{xla|noxla}-{layout}-b{batch}-{size}``, then ``-c{channels}``
        and ``-k{classes}`` where they differ from the ImageNet defaults (3 and 1000), then the
        switches that differ from their defaults: ``-fbn`` (fused batch norm), ``-fgemm`` (filter
        gradients as GEMMs), ``-t{INTRA}x{INTER}``
        (threads), ``-noonednn``, ``-fpmath_bf16``; reference models are prefixed with their name
        (``keras-resnet50-...``)."""
        prefix = "" if self.model == "resnet_perf" else f"{self.model}-"
        parts = [f"{prefix}resnet{self.depth}", self.precision, "xla" if self.xla else "noxla", self.layout,
                 f"b{self.batch_size}", str(self.image_size)]
        if self.channels != 3:
            parts.append(f"c{self.channels}")
        if self.num_classes != 1000:
            parts.append(f"k{self.num_classes}")
        if self.batch_norm != "keras":
            parts.append("fbn")
        if self.filter_grad != "conv":
            parts.append(f"f{self.filter_grad}")
        if self.threads != AUTO_THREADS:
            parts.append("t" + "x".join(map(str, parse_threads(self.threads))))
        if not self.onednn:
            parts.append("noonednn")
        if self.fpmath != "default":
            parts.append(f"fpmath_{self.fpmath}")
        return "-".join(parts)

    @property
    def data_format(self) -> str:
        """Keras ``data_format`` for the layout."""
        return LAYOUTS[self.layout]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """One image as (height, width, channels), whatever the layout (``build_resnet``'s form)."""
        return (self.image_size, self.image_size, self.channels)

    @property
    def batch_shape(self) -> tuple[int, int, int, int]:
        """A batch as the model takes it: NHWC or NCHW."""
        if self.layout == "nchw":
            return (self.batch_size, self.channels, self.image_size, self.image_size)
        return (self.batch_size, self.image_size, self.image_size, self.channels)

    def replace(self, **changes: Any) -> RunConfig:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The fields and the run_id, flat, for result rows."""
        return {"run_id": self.run_id, **dataclasses.asdict(self)}


def gemm_changes_nothing(depth: int, height: int, width: int) -> str:
    """The error of a GEMM filter-gradient model none of whose layers would take the GEMM."""
    return (f"filter gradient gemm changes no layer of ResNet-{depth} at {height}x{width}: none has at most "
            f"{GEMM_MAX_OUTPUT_PIXELS} output pixels and {GEMM_MIN_FILTERS} or more channels (use conv)")


def gemm_pays(kernel_size: int, output_pixels: int, filters: int, bfloat16: bool = False) -> bool:
    """Whether a layer's filter gradient bypasses oneDNN's backward-weights kernel under ``filter_grad="gemm"``:
    a spatial kernel (a 1x1 convolution's gradient is a GEMM already), few output pixels, many output channels;
    and where the layer computes in ``bfloat16``, any spatial kernel with at most ``BF16_MAX_OUTPUT_PIXELS``
    (measured on ResNet-18 and -50: docs/models.md).

    The bfloat16 rule adds layers only to models the float32 rule already changes: a ResNet's last stage has its
    fewest pixels and 512 channels, so whether any layer takes it is the same in both dtypes."""
    if kernel_size == 1:
        return False
    return (output_pixels <= GEMM_MAX_OUTPUT_PIXELS and filters >= GEMM_MIN_FILTERS
            or bfloat16 and output_pixels <= BF16_MAX_OUTPUT_PIXELS)


def batch_norm_as_rows(height: int, width: int, channels: int) -> bool:
    """Whether the fused batch norm normalizes an NHWC input of this shape as (N x H x W, 1, 1, C) rows: the same
    statistics over the same values, for which oneDNN's batch norm (v3.7, ``bnorm_tbb_jit``) runs 1.2-1.8x faster
    forward and backward on the wide layers (256-2048 channels, 100,352-802,816 values per image: ResNet-50's
    expanded layers at 224x224), and 0.8-0.96x on the narrow ones (docs/models.md)."""
    return channels >= BN_ROWS_MIN_CHANNELS and height * width * channels >= BN_ROWS_MIN_IMAGE_VALUES


def gemm_layers(depth: int, image_size: int, bfloat16: bool = False) -> int:
    """How many layers of our ResNet-``depth`` at ``image_size`` take the GEMM filter gradient (computing in
    ``bfloat16`` or not)."""
    return sum(gemm_pays(3, pixels, filters, bfloat16)
               for pixels, filters in get_spec(depth).spatial_convolutions(image_size))


def parse_threads(text: str) -> tuple[int, int] | None:
    """``"2:1"`` -> ``(2, 1)`` (intra-op, inter-op threads); ``"auto"`` -> ``None``."""
    if text == AUTO_THREADS:
        return None
    intra, colon, inter = str(text).partition(":")
    try:
        pools = (int(intra), int(inter)) if colon else None
    except ValueError:
        pools = None
    if pools is None or min(pools) < 1:
        raise UserError(f"threads must be INTRA:INTER (two integers >= 1, e.g. 2:1) or {AUTO_THREADS!r}, got {text!r}")
    return pools


def expand_matrix(
    *,
    depths: Sequence[int],
    precisions: Sequence[str],
    xla: Sequence[bool],
    layouts: Sequence[str],
    batch_sizes: Sequence[int],
    image_sizes: Sequence[int],
    warmup: int,
    steps: int,
    rounds: int = 1,
    reference: str | None = None,
    batch_norms: Sequence[str] = ("keras",),
    filter_grads: Sequence[str] = ("conv",),
    threads: Sequence[str] = (AUTO_THREADS,),
    onednn: Sequence[bool] = (True,),
    fpmath: Sequence[str] = ("default",),
) -> list[RunConfig]:
    """Every combination of the lists, as validated configs (the first bad value raises ``UserError``);
    fpmath modes other than the default and amp_bf16 are combined with oneDNN on only (they are its settings),
    the GEMM filter gradients with the NHWC layout and the depths and sizes where some layer takes them only.

    With ``reference="keras"`` each of our configs whose depth the peer has is followed by the
    same config on the peer model, so the two sit side by side.
    """
    if reference is not None:
        require_choice("reference model", reference, MODELS)
    configs = []
    for (depth, precision, use_xla, layout, batch_size, image_size, batch_norm, filter_grad, pools, use_onednn,
         math_mode) in itertools.product(depths, precisions, xla, layouts, batch_sizes, image_sizes, batch_norms,
                                         filter_grads, threads, onednn, fpmath):
        if not use_onednn and (math_mode != "default" or is_graph_rewrite(precision)):
            continue  # oneDNN's own settings
        if filter_grad == "gemm" and (layout != "nhwc" or not gemm_layers(depth, image_size)):
            continue  # GEMM_NEEDS_NHWC, gemm_changes_nothing
        config = RunConfig(depth=depth, batch_size=batch_size, image_size=image_size, precision=precision,
                           xla=use_xla, layout=layout, warmup=warmup, steps=steps, rounds=rounds,
                           batch_norm=batch_norm, filter_grad=filter_grad, threads=pools, onednn=use_onednn,
                           fpmath=math_mode)
        configs.append(config)
        if reference is not None and depth in MODELS[reference] and batch_norm == "keras" and filter_grad == "conv":
            configs.append(config.replace(model=reference))
    return configs
