"""The command lines: ``almanac`` (``next``, ``run``) and the ``kubectl almanac`` plugin.

At the edge: they read files, the clock and (the plugin) the cluster through
:mod:`almanac.kube`. Neither loads kopf or :mod:`almanac.controller` unless the user
runs the operator (``almanac run``, which imports it when it starts).
"""

import os
import sys


def reader_gone() -> int:
    """The exit code once the reader of our output went away (``| head``): as any Unix
    tool, stop quietly; stdout is pointed at devnull so that flushing it at exit does not
    complain again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
