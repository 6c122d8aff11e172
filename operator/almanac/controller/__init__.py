"""The operator: kopf handlers, the timer queue, leader election, admission, metrics.

The only package that imports kopf. It reads the cluster through :mod:`almanac.kube`
(the one module that talks to the API), asks :mod:`almanac.rules` and
:mod:`almanac.schedule` what to do, and does it. Nothing below it imports it, and the
command lines (``almanac next``, the plugin) never load it.
"""
