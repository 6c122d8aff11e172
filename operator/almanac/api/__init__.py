"""What users write and see: names and typed models.

Pure: imports nothing of Almanac but :mod:`almanac.schedule` (the models validate with
the engine's parsers) and :mod:`almanac.errors`; no Kubernetes client, no clock.
Everything above it (the controller, the webhook, ``almanac next``, the plugin) reads
objects through these models and names runs the way :mod:`almanac.api.names` says.
"""
