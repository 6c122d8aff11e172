"""Notifications of finished and late runs, by e-mail and by webhook: composing,
delivering, and the persisted retry state, whom the operator may mail, where it may
post, and how often.

Six modules, each importing only those before it:

- :mod:`~almanac.notifications.recipients`: the form of a recipient and the allow-list
  of recipient domains (standard library, ``idna`` and how :mod:`almanac.errors` quotes);
- :mod:`~almanac.notifications.ratelimit`: the per-namespace limit on e-mails (standard
  library only);
- :mod:`~almanac.notifications.smtp`: the operator's SMTP settings and sending one
  message (standard library and ``recipients``);
- :mod:`~almanac.notifications.message`: a finished run's report and its e-mail;
- :mod:`~almanac.notifications.webhook`: the hosts the operator posts to, a webhook's
  URL checked against them, the POST's body (json or slack) and one POST (aiohttp);
- :mod:`~almanac.notifications.state`: ``status.notification`` (and each webhook's
  state), whether and when to send, the back-off, and one attempt from compose to the
  recorded outcome.

Imports no Kubernetes client and no kopf: the controller hands it a report of the run
and writes back the state it returns.
"""
