"""What the operator decides, as pure functions: missed fires, concurrency, history,
the order of a run's services, and the whole plan for one object (``jobs.decide_job``,
``runs.decide_run``).

Pure: inputs in, a plan out; no Kubernetes client, no clock, no I/O. Imports
:mod:`almanac.api`, :mod:`almanac.schedule`, :mod:`almanac.times`, the pure state
functions of :mod:`almanac.notifications.state` and the settings types they take
(:class:`almanac.notifications.smtp.SmtpSettings`,
:class:`almanac.notifications.webhook.WebhookSettings`). The controller executes the plans;
the unit tests check them with tables and scenarios.
"""
