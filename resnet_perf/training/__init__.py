"""Training: recipes, the training loop, distribution strategies, Fashion-MNIST, seeds and the
multi-worker cluster."""
