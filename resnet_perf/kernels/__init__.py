"""Native kernels: TensorFlow ops of our own, compiled on the machine that runs them (``build.py``)."""
