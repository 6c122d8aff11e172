"""What the operator decides, as pure functions: missed fires, concurrency, history,
the order of a run's services.

Pure: inputs in, a plan out; no Kubernetes client, no clock, no I/O. The controller
executes the plans; the unit tests check them with tables.
"""
