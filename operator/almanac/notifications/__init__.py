"""E-mail notifications of finished runs: composing, delivering, and the persisted
retry state.

Three modules, each importing only those before it:

- :mod:`~almanac.notifications.smtp`: the operator's SMTP settings and sending one
  message (standard library only);
- :mod:`~almanac.notifications.message`: a finished run's report and its e-mail;
- :mod:`~almanac.notifications.state`: ``status.notification``, whether and when to
  send, the back-off, and one attempt from compose to the recorded outcome.

Imports no Kubernetes client and no kopf: the controller hands it a report of the run
and writes back the state it returns.
"""
