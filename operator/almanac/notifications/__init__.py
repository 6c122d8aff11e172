"""E-mail notifications of finished runs: composing, delivering, and the persisted
retry state, whom the operator may mail and how often.

Five modules, each importing only those before it:

- :mod:`~almanac.notifications.recipients`: the form of a recipient and the allow-list
  of recipient domains (standard library, ``idna`` and how :mod:`almanac.errors` quotes);
- :mod:`~almanac.notifications.ratelimit`: the per-namespace limit on e-mails (standard
  library only);
- :mod:`~almanac.notifications.smtp`: the operator's SMTP settings and sending one
  message (standard library and ``recipients``);
- :mod:`~almanac.notifications.message`: a finished run's report and its e-mail;
- :mod:`~almanac.notifications.state`: ``status.notification``, whether and when to
  send, the back-off, and one attempt from compose to the recorded outcome.

Imports no Kubernetes client and no kopf: the controller hands it a report of the run
and writes back the state it returns.
"""
