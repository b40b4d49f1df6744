"""The models: the ResNet builder and its blocks (``resnet``), the fused batch norm layer, FLOP counts
and the training objective."""
