"""Profiler traces: capturing one (``capture``), reading it (``xplane``) and where the time went
(``breakdown``)."""
