"""What the operator's log keeps: one line per decision, not one per kopf handler call."""

from __future__ import annotations

import logging

import pytest

from almanac.controller.runner import KopfChatter


def record(name: str, level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


@pytest.mark.parametrize(
    ("name", "level", "message", "root", "kept", "shown"),
    [
        ("kopf.objects", logging.INFO, "Handler 'run' succeeded.", logging.INFO, False, None),
        ("kopf.objects", logging.INFO, "Handler 'run' succeeded.", logging.DEBUG, True,
         ("DEBUG", "Handler 'run' succeeded.")),
        ("kopf.activities.startup", logging.INFO, "Activity 'startup' succeeded.", logging.INFO,
         False, None),
        ("kopf.objects", logging.ERROR,
         "Handler 'validate-scheduledjob' failed permanently: spec.schedule: bad",
         logging.INFO, True,
         ("INFO", "admission refused (validate-scheduledjob): spec.schedule: bad")),
        ("kopf.objects", logging.ERROR, "Handler 'run' failed permanently: boom", logging.INFO,
         True, ("ERROR", "Handler 'run' failed permanently: boom")),
        ("kopf.objects", logging.INFO, "Something else happened.", logging.INFO, True,
         ("INFO", "Something else happened.")),
        ("almanac.kube", logging.INFO, "ns/ScheduledJob/j: RunCreated: created run j-1",
         logging.INFO, True, ("INFO", "ns/ScheduledJob/j: RunCreated: created run j-1")),
        ("almanac.kube", logging.DEBUG, "detail", logging.INFO, False, None),
    ],
)  # fmt: skip
def test_kopf_chatter_is_debug_and_a_refusal_is_info(
    name: str,
    level: int,
    message: str,
    root: int,
    kept: bool,
    shown: tuple[str, str] | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logging.getLogger(), "level", root)
    item = record(name, level, message)
    assert KopfChatter().filter(item) is kept
    if shown is not None:
        assert (item.levelname, item.getMessage()) == shown


@pytest.mark.parametrize(("verbose", "level"), [(False, logging.WARNING), (True, logging.NOTSET)])
def test_without_verbose_kopf_builds_no_record_for_its_per_object_chatter(
    verbose: bool, level: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from almanac.controller.runner import configure_logging

    objects = logging.getLogger("kopf.objects")
    monkeypatch.setattr(objects, "level", logging.NOTSET)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # kopf adds its own; the filter goes on it
    monkeypatch.setattr(root, "level", root.level)
    configure_logging("plain", verbose)
    assert objects.level == level
    assert objects.isEnabledFor(logging.INFO) is verbose
    assert objects.isEnabledFor(logging.ERROR)  # an admission refusal still reaches the log
    objects.manager._clear_cache()  # isEnabledFor's answers were for this test's levels
