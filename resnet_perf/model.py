"""``python -m resnet_perf.model``: build a ResNet and print its stage-by-stage output shapes,
parameter count and MACs (the builder: ``resnet_perf.models.resnet``).

    python -m resnet_perf.model --depth 18 --input-shape 224,224,1 --classes 10
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from resnet_perf import cli
from resnet_perf.config import LAYOUTS, RunConfig
from resnet_perf.errors import UserError
from resnet_perf.models.flops import count_macs
from resnet_perf.models.resnet import build_resnet, count_params, stage_output_shapes


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser(
        prog="python -m resnet_perf.model",
        description="Build a ResNet and print its stage-by-stage output shapes, parameter count and MACs.")
    cli.add_config_options(parser, RunConfig(), fields=("depth",))
    parser.add_argument("--input-shape", type=cli.parse_shape, default=(224, 224, 3), metavar="H,W,C",
                        help="image height, width and channels (default 224,224,3)")
    parser.add_argument("--classes", type=int, default=1000, help="output classes (default 1000)")
    cli.add_config_options(parser, RunConfig(), fields=("layout", "precision"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        model = build_resnet(args.depth, num_classes=args.classes, input_shape=args.input_shape,
                             data_format=LAYOUTS[args.layout], precision=args.precision)
        print(f"{model.name}  input {args.input_shape} ({args.layout}), {args.classes} classes, {args.precision}")
        for label, kind, shape in stage_output_shapes(model):
            print(f"  {label:<10} {kind:<24} {shape}")
        trainable, frozen = count_params(model)
        macs = count_macs(model)
        print(f"parameters: {trainable:,} trainable, {frozen:,} non-trainable (BN moving statistics)")
        print(f"forward pass per image: {macs.gmacs:.3f} GMACs = {macs.gflops:.3f} GFLOPs (1 MAC = 2 FLOPs)")
    except UserError as error:
        return cli.fail(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
