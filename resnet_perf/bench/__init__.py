"""Measuring a step: the synthetic workload, the step functions, timing, rounds and the turns of
processes taking them, result rows, peak memory, the largest batch and the default matrix."""
