"""E-mail notifications of finished runs: composing, delivering, and the persisted
retry state.

Imports no Kubernetes client and no kopf: the controller hands it a report of the run
and writes back the state it returns.
"""
