"""Processes that measure apart: worker processes taking turns (``isolated``, ``worker``), the A/B
runner and its variants, and starting and stopping child processes (``spawn``)."""
