"""The machine: its CPU flags and oneDNN state (``cpu``), its fingerprint, the process-wide switches
(threads, oneDNN, fpmath, amp_bf16), where a configuration meets TensorFlow (``runtime``) and CPU time."""
