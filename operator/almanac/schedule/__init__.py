"""When a ScheduledJob fires: cron expressions, time zones, exclusions, the engine.

Pure: no Kubernetes, no clock (every function takes the instant it reasons about), and
no import from Almanac but :mod:`almanac.errors`. The rules are docs/api.md's "When a
ScheduledJob fires"; docs/schedule.md explains them.
"""
