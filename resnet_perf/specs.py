"""The ResNet family as one table: depth -> stage layout.

Each entry follows He et al., "Deep Residual Learning for Image Recognition" (2015), Table 1:
four residual stages after the stem, each with a number of blocks of one kind.  The builder in
``resnet_perf.models.resnet`` loops over this table; no depth is written out by hand anywhere else.
"""
from __future__ import annotations

from typing import Literal, NamedTuple

from resnet_perf.errors import UserError

BlockKind = Literal["basic", "bottleneck"]

STAGE_WIDTHS = (64, 128, 256, 512)
"""Inner width of each stage's blocks (the 3x3 convolutions)."""

TOTAL_STRIDE = 32
"""The stem and stages halve the image five times; a smaller image would be all padding."""

BOTTLENECK_EXPANSION = 4
"""A bottleneck block widens its output to ``4 x`` its inner width (e.g. 64 -> 256)."""


class ResNetSpec(NamedTuple):
    """How one depth of the family is put together."""

    depth: int
    block: BlockKind
    blocks_per_stage: tuple[int, int, int, int]
    widths: tuple[int, int, int, int] = STAGE_WIDTHS

    @property
    def expansion(self) -> int:
        """Output channels of a block divided by its inner width."""
        return BOTTLENECK_EXPANSION if self.block == "bottleneck" else 1

    @property
    def output_widths(self) -> tuple[int, ...]:
        """Channels each stage hands to the next (and the last one to the head)."""
        return tuple(width * self.expansion for width in self.widths)

    def spatial_convolutions(self, image_size: int) -> list[tuple[int, int]]:
        """(output pixels, output channels) of every 3x3 convolution of the stages, for square images of
        ``image_size``: the stem and its max-pool halve the side twice, each later stage once more
        (``same`` padding: rounded up), and every 3x3 convolution of a stage has its inner width."""
        def halved(size: int) -> int:  # a stride of 2 with same padding
            return -(-size // 2)

        side = halved(halved(image_size))
        convolutions = []
        for stage, (blocks, width) in enumerate(zip(self.blocks_per_stage, self.widths)):
            side = halved(side) if stage else side
            convolutions += [(side * side, width)] * (blocks * (2 if self.block == "basic" else 1))
        return convolutions


RESNET_SPECS: dict[int, ResNetSpec] = {
    18: ResNetSpec(18, "basic", (2, 2, 2, 2)),
    34: ResNetSpec(34, "basic", (3, 4, 6, 3)),
    50: ResNetSpec(50, "bottleneck", (3, 4, 6, 3)),
    101: ResNetSpec(101, "bottleneck", (3, 4, 23, 3)),
    152: ResNetSpec(152, "bottleneck", (3, 8, 36, 3)),
}

DEPTHS: tuple[int, ...] = tuple(RESNET_SPECS)


def get_spec(depth: int) -> ResNetSpec:
    """The spec for ``depth``; a ``ValueError`` naming the valid depths otherwise."""
    try:
        return RESNET_SPECS[depth]
    except (KeyError, TypeError):
        valid = ", ".join(str(d) for d in DEPTHS)
        raise UserError(f"unknown ResNet depth {depth!r}: choose one of {valid}") from None
