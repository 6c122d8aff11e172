"""The command lines: ``almanac`` (``next``, ``run``) and the ``kubectl almanac`` plugin.

At the edge: they read files, the clock and (the plugin) the cluster through
:mod:`almanac.kube`. Neither loads kopf or :mod:`almanac.controller` unless the user
runs the operator (``almanac run``, which imports it when it starts).
"""
