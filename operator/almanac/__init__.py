"""Almanac: a Kubernetes operator for calendar-aware scheduled jobs.

The pure core (``schedule``, ``calendars``, ``orchestration``) knows nothing of Kubernetes;
``kube`` is the only module that talks to the API server; ``handlers`` are thin kopf
handlers that connect the two.
"""

__version__ = "0.1.0"
