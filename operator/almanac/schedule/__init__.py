"""When a ScheduledJob fires: cron expressions, time zones, exclusions, the engine.

Pure: no Kubernetes, no clock (every function takes the instant it reasons about), and
no import from Almanac but :mod:`almanac.errors` and :mod:`almanac.times`. The rules are
docs/api.md's "When a ScheduledJob fires"; docs/schedule.md explains them.

The modules, each importing only those listed before it:

- ``cron``: the cron expression parser (:class:`~almanac.schedule.cron.CronExpression`);
- ``zones``: IANA zones, RFC 3339 date-times, and each zone's wall clock <-> instants;
- ``exclusions``: the exclusion lists and Calendars' entries, and why a date is excluded;
- ``countries`` and ``ical``: dates computed year by year (a country's or a market's
  holidays from the ``holidays`` package; an iCalendar's events with ``icalendar`` and
  ``recurring-ical-events``), imported only when a Calendar uses them;
- ``days``: which local dates the cron day fields and the exclusions leave, month by month;
- ``explain``: fires, skipped days and explanations, for people;
- ``engine``: :class:`~almanac.schedule.engine.Schedule` and its fire search, the entry point.
"""
