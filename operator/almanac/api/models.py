"""Pydantic models of Almanac's custom resources, as docs/api.md lists their fields.

Where it sits: at the edge. A handler (or ``almanac next``) validates a body once with
:meth:`ScheduledJob.parse` / :meth:`Calendar.parse`; everything inside works on the
models. A bad body becomes one :class:`InvalidSpec` naming every bad field by its path
as a user writes it (``spec.exclusions.annual[1]: "31.02" is not a day of the year
(dd.MM)``). Field values are checked with the same parsers the engine uses
(:mod:`almanac.schedule.cron`, :mod:`almanac.schedule.zones`,
:mod:`almanac.schedule.exclusions`), so a valid model always builds.

What needs more than one object is checked by :meth:`ScheduledJobSpec.build_schedule`
(the referenced Calendars exist; ``endTime`` is not before ``startTime`` in the zone).

Names: Python attributes are snake_case, the aliases are the resources' camelCase field
names (``time_zone`` / ``timeZone``; ``async_`` / ``async``); both are accepted on input,
``model_dump(by_alias=True)`` gives the resource's form.

Defaults where docs/api.md is silent follow CronJob: ``concurrencyPolicy: Allow``,
``successfulRunsHistoryLimit: 3``, ``failedRunsHistoryLimit: 1``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from email.utils import parseaddr
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from almanac.api import bounds, feeds
from almanac.api.names import calendar_key
from almanac.errors import FieldError, InvalidSpec, quote
from almanac.schedule import countries, ical
from almanac.schedule.cron import CronExpression
from almanac.schedule.days import OnExcludedDay
from almanac.schedule.engine import Schedule
from almanac.schedule.exclusions import (
    OWN_SOURCE,
    DateSet,
    Exclusions,
    calendar_source,
    parse_annual,
    parse_holiday,
    parse_monthly,
    parse_weekly,
)
from almanac.schedule.zones import parse_date_time, parse_time_zone
from almanac.times import format_duration, parse_duration, parse_instant

__all__ = [
    "API_VERSION",
    "Backfill",
    "BackfillOrder",
    "BackfillSpec",
    "Calendar",
    "CalendarNotFetched",
    "CalendarRef",
    "CalendarSource",
    "CalendarSpec",
    "CalendarStatus",
    "ClusterCalendar",
    "ConcurrencyPolicy",
    "Condition",
    "ExclusionLists",
    "FeedStatus",
    "HolidaySource",
    "KeyRef",
    "LastRun",
    "Notifications",
    "ObjectMeta",
    "OnExcludedDay",
    "ScheduledJob",
    "ScheduledJobMeta",
    "ScheduledJobSpec",
    "ScheduledJobStatus",
    "SecretKeyRef",
    "Service",
    "Webhook",
    "WebhookFormat",
]

API_VERSION: Final = "almanac.dev/v1alpha1"


def _checked(parse: Callable[[str], object]) -> AfterValidator:
    """Validate a string with one of the engine's parsers, keeping the string."""

    def check(value: str) -> str:
        parse(value)
        return value

    return AfterValidator(check)


def _day_number(value: object) -> object:
    """A monthly day written as a YAML integer (``monthly: [1]``) is the string ``"1"``."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _in_years(value: str) -> str:
    """A date-time (``startTime``, ``endTime``) in the years of :mod:`almanac.api.bounds`."""
    problem = bounds.year_error(parse_date_time(value).year)
    if problem:
        raise ValueError(f"{problem} (got {quote(value)})")
    return value


def _run_deadline(value: str) -> str:
    """A ``runDeadline`` (``2h``, ``90m``) within the bounds of :mod:`almanac.api.bounds`."""
    deadline = parse_duration(value)
    if not bounds.RUN_DEADLINE_MIN <= deadline <= bounds.RUN_DEADLINE_MAX:
        raise ValueError(
            f"{quote(value)} is not between {format_duration(bounds.RUN_DEADLINE_MIN)} and "
            f"{bounds.RUN_DEADLINE_MAX // timedelta(hours=1)}h "
            f"({bounds.RUN_DEADLINE_MAX.days} days)"
        )
    return value


def _holiday(value: str) -> str:
    """A holiday date (``dd.MM.yyyy``) in the years of :mod:`almanac.api.bounds`."""
    problem = bounds.year_error(parse_holiday(value).year)
    if problem:
        raise ValueError(f"{quote(value)}: {problem} (dd.MM.yyyy)")
    return value


class _SubfieldError(ValueError):
    """A model validator's error about one of the model's fields: the path gets
    ``.field`` (``spec.holidays[0].country``), as a field validator's would."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _ical(value: str) -> str:
    """An iCalendar text that icalendar and recurring-ical-events read and expand, with
    at most :data:`~almanac.api.bounds.ICAL_MAX_EVENTS` events, and components and
    content lines within their bounds."""
    try:
        ical.check(
            value,
            max_events=bounds.ICAL_MAX_EVENTS,
            max_recurring=bounds.ICAL_MAX_RECURRING_EVENTS,
            max_components=bounds.ICAL_MAX_COMPONENTS,
            max_lines=bounds.ICAL_MAX_CONTENT_LINES,
        )
    except ical.ICalendarProblem as e:
        raise ValueError(f"not valid iCalendar (RFC 5545): {e}") from None
    except ical.ICalendarTooBig as e:
        raise ValueError(str(e)) from None
    return value


def _whole_number(value: object) -> object:
    """An integer field as the CRD's ``type: integer`` reads it: a string (``"7"``) or a
    boolean is refused, not converted, so ``almanac next`` refuses what ``kubectl apply``
    does."""
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {str(value).lower()}")
    if isinstance(value, str):
        raise ValueError(f"expected an integer, got the string {quote(value)}; write it unquoted")
    return value


# Scalars typed as in the CRD (``type: boolean``, ``type: integer``): pydantic's lax
# mode would read ``suspend: "yes"`` as true and ``maxShiftDays: "7"`` as 7.
_Flag = Annotated[bool, Field(strict=True)]
_Int = Annotated[int, BeforeValidator(_whole_number)]

# One exclusion entry: bounded in length before it is parsed.
_Entry = Field(max_length=bounds.EXCLUSION_ENTRY_MAX_LENGTH)
_DateTime = Annotated[
    str,
    Field(max_length=bounds.DATE_TIME_MAX_LENGTH),
    _checked(parse_date_time),
    AfterValidator(_in_years),
]

# A service name is part of Job names and label values (almanac.api.bounds).
_SERVICE_NAME = re.compile(
    rf"[a-z0-9]([-a-z0-9]{{0,{bounds.SERVICE_NAME_MAX_LENGTH - 2}}}[a-z0-9])?"
)
_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+")


def _service_name(value: str) -> str:
    if not _SERVICE_NAME.fullmatch(value):
        raise ValueError(
            f"{quote(value)} is not a service name (lowercase letters, digits and '-', "
            f"starting and ending with a letter or digit, at most "
            f"{bounds.SERVICE_NAME_MAX_LENGTH} characters)"
        )
    return value


def _email(value: str) -> str:
    """An e-mail address. Read leniently (``Ops <ops@example.com>`` too), so that a job
    stored before the recipient contract keeps firing; what the operator mails is
    decided by :mod:`almanac.notifications.recipients` (at admission and at delivery)."""
    name, address = parseaddr(value)
    if not _ADDRESS.fullmatch(address) or (not name and address != value.strip()):
        raise ValueError(f"{quote(value)} is not an e-mail address (ops@example.com)")
    return value


class _Model(BaseModel):
    """A spec part: camelCase on the wire, and strict."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",  # a misspelt field (timezone for timeZone) is an error, not ignored
        use_attribute_docstrings=True,
        frozen=True,
    )


class _Lenient(_Model):
    """An object or its metadata as the API server returns it: fields we don't model
    (managedFields, a newer version's additions) are kept, not refused."""

    model_config = ConfigDict(extra="allow")


class _Status(_Lenient):
    """Status written by the operator; lenient so that a status never makes a job invalid."""

    model_config = ConfigDict(frozen=False)


# --------------------------------------------------------------------------------------
# Shared parts


class ObjectMeta(_Lenient):
    """The parts of Kubernetes metadata Almanac reads; every other field is kept."""

    name: str
    """The object's name."""
    namespace: str | None = None
    """The object's namespace (absent in a manifest that relies on the current one)."""


class ScheduledJobMeta(ObjectMeta):
    """A ScheduledJob's metadata: its name is part of its runs' and their Jobs' names."""

    name: Annotated[str, Field(max_length=bounds.SCHEDULED_JOB_NAME_MAX_LENGTH)]
    """At most 28 characters, so that every Job name derived from it fits in 63."""


class ExclusionLists(_Model):
    """Days on which nothing fires, as local dates in the job's time zone."""

    annual: Annotated[
        list[Annotated[str, _Entry, _checked(parse_annual)]],
        Field(max_length=bounds.ANNUAL_MAX_ITEMS),
    ] = []
    """``dd.MM``, every year, e.g. ``"25.12"``."""
    monthly: Annotated[
        list[Annotated[str, BeforeValidator(_day_number), _Entry, _checked(parse_monthly)]],
        Field(max_length=bounds.MONTHLY_MAX_ITEMS),
    ] = []
    """``dd``, every month that has that day, e.g. ``"31"``; a YAML integer (``31``) too."""
    weekly: Annotated[
        list[Annotated[str, _Entry, _checked(parse_weekly)]],
        Field(max_length=bounds.WEEKLY_MAX_ITEMS),
    ] = []
    """English day names or 3-letter abbreviations, any case, e.g. ``"Saturday"``, ``"sun"``."""
    holiday: Annotated[
        list[Annotated[str, _Entry, AfterValidator(_holiday)]],
        Field(max_length=bounds.HOLIDAY_MAX_ITEMS),
    ] = []
    """``dd.MM.yyyy``, one date each, e.g. ``"14.04.2027"``, in the years 1970-2200."""

    def to_exclusions(self, source: str = OWN_SOURCE, path: str = OWN_SOURCE) -> Exclusions:
        """The engine's form; each rule remembers ``source`` and its field path."""
        return Exclusions.parse(
            source=source,
            path=path,
            annual=self.annual,
            monthly=self.monthly,
            weekly=self.weekly,
            holiday=self.holiday,
        )


# --------------------------------------------------------------------------------------
# Calendar


class Condition(_Status):
    """A Kubernetes status condition (``Ready`` for a ScheduledJob)."""

    type: str
    """E.g. ``Ready``."""
    status: str | None = None
    """``True`` | ``False`` | ``Unknown``."""
    reason: str | None = None
    """CamelCase, e.g. ``InvalidSpec`` or ``EveryDayExcluded``."""
    message: str | None = None
    """For humans."""
    last_transition_time: str | None = None
    """RFC 3339."""
    observed_generation: int | None = None
    """The generation the condition was computed from."""


_Code = Annotated[str, Field(min_length=1, max_length=bounds.HOLIDAYS_CODE_MAX_LENGTH)]


class HolidaySource(_Model):
    """A country's (or a subdivision's) or a financial market's holidays, every year, as
    the ``holidays`` package computes them (:mod:`almanac.schedule.countries`)."""

    country: _Code | None = None
    """ISO 3166-1 code the package knows (``RO``, ``US``, ``ROU``); or ``market``."""
    market: _Code | None = None
    """A financial market the package knows (``NYSE``, ``XLON``, ``ECB``); or ``country``."""
    subdivision: (
        Annotated[str, Field(min_length=1, max_length=bounds.HOLIDAYS_SUBDIVISION_MAX_LENGTH)]
        | None
    ) = None
    """A region's ISO 3166-2 code (``BY``, ``CA``) or the package's name for it."""
    categories: (
        Annotated[list[_Code], Field(min_length=1, max_length=bounds.HOLIDAYS_CATEGORIES_MAX_ITEMS)]
        | None
    ) = None
    """The package's categories (``public``, ``bank``, ``optional``...); default ``public``."""
    language: _Code | None = None
    """Language of the holidays' names (``en_US``); default the country's own."""

    @model_validator(mode="after")
    def _known(self) -> Self:
        try:
            countries.check(
                country=self.country,
                market=self.market,
                subdivision=self.subdivision,
                categories=tuple(self.categories or ()),
                language=self.language,
            )
        except countries.HolidaysProblem as e:
            raise _SubfieldError(e.field, str(e)) from None
        return self

    def to_date_set(self, source: str, path: str) -> countries.CountryHolidays:
        """The engine's form, in the years of :mod:`almanac.api.bounds` that the package
        covers (most countries up to 2100)."""
        first, last = countries.years_covered(country=self.country, market=self.market)
        return countries.CountryHolidays(
            source=source,
            path=path,
            first_year=max(first, bounds.YEAR_MIN),
            last_year=min(last, bounds.YEAR_MAX),
            country=self.country,
            market=self.market,
            subdivision=self.subdivision,
            categories=tuple(dict.fromkeys(self.categories or (countries.DEFAULT_CATEGORY,))),
            language=self.language,
        )


class KeyRef(_Model):
    """One key of a ConfigMap or Secret. A Calendar's is in its own namespace (no
    ``namespace``); a ClusterCalendar's names the namespace."""

    name: Annotated[str, Field(min_length=1, max_length=bounds.NAME_MAX_LENGTH)]
    """The ConfigMap's (or Secret's) name."""
    key: Annotated[str, Field(min_length=1, max_length=bounds.NAME_MAX_LENGTH)]
    """The key whose value is used."""
    namespace: Annotated[str, Field(min_length=1, max_length=63)] | None = None
    """Only in a ClusterCalendar (which has no namespace of its own), and required there."""


def _url(value: str) -> str:
    """An http(s) URL without spaces (the fetch goes nowhere else: no file:, no ftp:)."""
    if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", value):
        raise ValueError(
            "is not an http:// or https:// URL (for example "
            "https://calendar.example.com/holidays.ics)"
        )
    return value


def _refresh_interval(value: str) -> str:
    feeds.parse_interval(
        value,
        minimum=bounds.REFRESH_INTERVAL_MIN_SECONDS,
        maximum=bounds.REFRESH_INTERVAL_MAX_SECONDS,
    )
    return value


class CalendarSource(_Model):
    """Where a Calendar's iCalendar text comes from: a URL (``url``) or a ConfigMap key
    (``configMapKeyRef``), fetched again every ``refreshInterval``."""

    url: (
        Annotated[str, Field(max_length=bounds.FEED_URL_MAX_LENGTH), AfterValidator(_url)] | None
    ) = None
    """An http(s) URL serving iCalendar text (a published calendar's "secret address"
    too: it is never logged)."""
    config_map_key_ref: KeyRef | None = None
    """A ConfigMap key holding iCalendar text (instead of ``url``)."""
    ca_bundle_secret_ref: KeyRef | None = None
    """With an https ``url``: a Secret key holding the PEM certificates the server's
    certificate must chain to (instead of the system's)."""
    refresh_interval: (
        Annotated[str, Field(max_length=16), AfterValidator(_refresh_interval)] | None
    ) = None
    """How often the text is fetched again, ``10s`` to ``168h``; default ``1h``."""

    @model_validator(mode="after")
    def _one_place(self) -> Self:
        if (self.url is None) == (self.config_map_key_ref is None):
            raise ValueError(
                "give exactly one of url (an https:// address) or configMapKeyRef ({name, key})"
            )
        if self.ca_bundle_secret_ref is not None and not (self.url or "").startswith("https:"):
            raise _SubfieldError(
                "caBundleSecretRef", "is only for an https:// url (it names the CA to trust)"
            )
        return self

    def interval(self) -> timedelta:
        """The refresh interval (``refreshInterval`` or its default)."""
        return feeds.parse_interval(
            self.refresh_interval or bounds.REFRESH_INTERVAL_DEFAULT,
            minimum=bounds.REFRESH_INTERVAL_MIN_SECONDS,
            maximum=bounds.REFRESH_INTERVAL_MAX_SECONDS,
        )


class FeedError(_Status):
    """The last failed fetch."""

    time: str | None = None
    """When it failed (RFC 3339)."""
    message: str | None = None
    """Why, without the URL (e.g. ``HTTP 503``, ``timed out after 10 s``)."""


class FeedStatus(_Status):
    """What the operator knows of a Calendar's ``spec.source`` (it alone writes this)."""

    location: str | None = None
    """A digest of the URL or ConfigMap key the kept copy came from."""
    revision: str | None = None
    """The kept copy's content hash, ``sha256:<hex>``; runs record it."""
    content: str | None = None
    """The kept copy: the text, gzip-compressed and base64-encoded."""
    events: int | None = None
    """VEVENTs in the kept copy."""
    dates: int | None = None
    """Dates its events take in the 365 days from its fetch (UTC)."""
    last_fetch_time: str | None = None
    """The last successful fetch (RFC 3339)."""
    last_attempt_time: str | None = None
    """The last fetch, successful or not; the next is ``refreshInterval`` after it."""
    last_error: FeedError | None = None
    """The last failed fetch, while the feed fails (absent after a success)."""
    observed_generation: int | None = None
    """The Calendar generation of the last fetch: a spec change fetches at once."""


class CalendarStatus(_Status):
    """Written by the operator for a Calendar with ``spec.source``."""

    source: FeedStatus | None = None
    """The feed's kept copy and fetches."""
    conditions: list[Condition] = []
    """``Ready``: True once the feed was fetched (``Fetched``; ``FetchFailed`` keeps the
    last copy), False before (``NotFetched``)."""


class CalendarNotFetched(ValueError):
    """A Calendar with ``spec.source`` whose feed has no copy from that source yet: a
    job that refers to it does not fire (firing on a bank holiday is worse than
    waiting)."""


class CalendarSpec(ExclusionLists):
    """A Calendar's spec: the same four lists as a ScheduledJob's ``spec.exclusions``,
    and dates computed from a country's holidays and from an iCalendar."""

    description: Annotated[str, Field(max_length=bounds.CALENDAR_DESCRIPTION_MAX_LENGTH)] | None = (
        None
    )
    """What the Calendar is, for humans (e.g. "Romanian bank holidays 2027")."""
    holidays: Annotated[list[HolidaySource], Field(max_length=bounds.HOLIDAYS_MAX_ITEMS)] = []
    """Countries' and markets' holidays, every year 1970-2200 (docs/calendars.md)."""
    ical: Annotated[str, Field(max_length=bounds.ICAL_MAX_LENGTH), AfterValidator(_ical)] | None = (
        None
    )
    """Inline iCalendar (RFC 5545) text: its events' local dates are excluded."""
    source: CalendarSource | None = None
    """An iCalendar feed the operator fetches and refreshes (a URL or a ConfigMap key):
    its events' local dates are excluded, as for ``ical``."""


class Calendar(_Lenient):
    """A named set of exclusions that ScheduledJobs in its namespace refer to."""

    api_version: Literal["almanac.dev/v1alpha1"] = API_VERSION
    """Always ``almanac.dev/v1alpha1``."""
    kind: Literal["Calendar", "ClusterCalendar"] = "Calendar"
    """``Calendar``, or ``ClusterCalendar`` (:class:`ClusterCalendar`)."""
    metadata: ObjectMeta
    """Name and namespace; ScheduledJobs refer to the name."""
    spec: CalendarSpec = Field(default_factory=CalendarSpec)
    """The exclusion lists."""
    status: CalendarStatus | None = None
    """Written by the operator: the feed's kept copy."""
    _exclusions: Exclusions | None = PrivateAttr(default=None)

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> Self:
        """Validate a body; :class:`InvalidSpec` names every bad field."""
        return _parse(cls, body)

    @model_validator(mode="after")
    def _references_in_scope(self) -> Self:
        """A ClusterCalendar has no namespace: its ConfigMap and Secret say theirs. A
        Calendar reads only its own namespace's (a namespace user must not read another
        namespace's Secrets through the operator)."""
        source = self.spec.source
        if source is None:
            return self
        cluster = self.kind == "ClusterCalendar"
        for field_name, ref in (
            ("configMapKeyRef", source.config_map_key_ref),
            ("caBundleSecretRef", source.ca_bundle_secret_ref),
        ):
            if ref is None or (ref.namespace is not None) == cluster:
                continue
            path = f"spec.source.{field_name}.namespace"
            if cluster:
                raise _SubfieldError(path, "is required in a ClusterCalendar (it has none)")
            raise _SubfieldError(
                path, "is not allowed in a Calendar: it reads its own namespace's objects"
            )
        return self

    def source_name(self) -> str:
        """``Calendar <name>`` or ``ClusterCalendar <name>``, as explanations say."""
        return calendar_source(self.metadata.name, self.kind)

    def kept_text(self) -> str | None:
        """The iCalendar text of ``spec.source``'s kept copy, None without a source.

        :class:`CalendarNotFetched` when no copy from this source was fetched yet (a new
        Calendar, or one whose URL or ConfigMap changed: the copy of the old one is not
        this source's)."""
        source = self.spec.source
        if source is None:
            return None
        kept = self.status.source if self.status else None
        wanted = feeds.location(source.model_dump(by_alias=True, exclude_none=True))
        if kept is None or kept.content is None or kept.location != wanted:
            error = kept.last_error.message if kept and kept.last_error else None
            raise CalendarNotFetched(
                f"{self.source_name()} has not been fetched yet"
                + (f" (last error: {error})" if error else "")
                + "; the job does not fire until it is"
            )
        try:
            return feeds.unpack(kept.content)
        except feeds.FeedCopyUnreadable as e:
            raise CalendarNotFetched(f"{self.source_name()}: {e}") from None

    def revision(self) -> str | None:
        """The kept copy's content hash (``sha256:...``), None without a source."""
        if self.spec.source is None or self.status is None or self.status.source is None:
            return None
        return self.status.source.revision

    def exclusions(self) -> Exclusions:
        """The engine's form, each rule attributed to ``Calendar <name>``: the four
        lists, and a date set per ``holidays`` entry, for ``ical`` and for the kept copy
        of ``source`` (:class:`CalendarNotFetched` without one). Worked out once per
        model: a Calendar that many jobs refer to is parsed once per content
        (:func:`almanac.api.resolve.parse_calendars`), and each of their decisions asks."""
        if self._exclusions is None:
            self._exclusions = self._work_out_exclusions()
        return self._exclusions

    def _work_out_exclusions(self) -> Exclusions:
        source = self.source_name()
        lists = self.spec.to_exclusions(source, "spec")
        dated: list[DateSet] = [
            entry.to_date_set(source, f"spec.holidays[{i}]")
            for i, entry in enumerate(self.spec.holidays)
        ]
        for path, text in (("spec.ical", self.spec.ical), ("spec.source", self.kept_text())):
            if text is not None:
                dated.append(
                    ical.ICalendarDates(source, path, text, bounds.YEAR_MIN, bounds.YEAR_MAX)
                )
        return Exclusions(lists.rules, dated) if dated else lists


class ClusterCalendar(Calendar):
    """A Calendar without a namespace, for the ScheduledJobs of every namespace
    (``calendarRefs: [{kind: ClusterCalendar, name: ...}]``)."""

    kind: Literal["Calendar", "ClusterCalendar"] = "ClusterCalendar"
    """Always ``ClusterCalendar``."""

    @field_validator("kind")
    @classmethod
    def _cluster_kind(cls, kind: str) -> str:
        if kind != "ClusterCalendar":
            raise ValueError(f"{quote(kind)} is not ClusterCalendar")
        return kind


# --------------------------------------------------------------------------------------
# ScheduledJob


class ConcurrencyPolicy(StrEnum):
    """What to do when a fire comes while a run of the same job is active (as CronJob)."""

    ALLOW = "Allow"
    """Start another run beside it."""
    FORBID = "Forbid"
    """Skip this fire (recorded as missed)."""
    REPLACE = "Replace"
    """Stop the active run and start the new one."""


class CatchUp(StrEnum):
    """Which missed fires start when the operator can act again (docs/api.md "Missed
    fires")."""

    LATEST = "Latest"
    """The latest, within startingDeadlineSeconds (CronJob's behaviour)."""
    ALL = "All"
    """Every one within startingDeadlineSeconds, oldest first, at most 1,000."""
    NONE = "None"
    """None of those that fell while no operator was serving: recorded only."""


class CalendarRef(_Model):
    """A Calendar in the job's namespace, or a ClusterCalendar, whose exclusions add to
    the job's own."""

    kind: Literal["Calendar", "ClusterCalendar"] = "Calendar"
    """``Calendar`` (in the job's namespace, the default) or ``ClusterCalendar``."""
    name: Annotated[str, Field(min_length=1, max_length=bounds.NAME_MAX_LENGTH)]
    """The Calendar's name."""

    def key(self) -> str:
        """Its key among the job's calendars (:func:`almanac.api.names.calendar_key`)."""
        return calendar_key(self.kind, self.name)


_SECRET_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")


def _secret_name(value: str) -> str:
    if not _SECRET_NAME.fullmatch(value):
        raise ValueError(
            f"{quote(value)} is not a Secret name (lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit)"
        )
    return value


def _secret_key(value: str) -> str:
    if not _SECRET_KEY.fullmatch(value):
        raise ValueError(f"{quote(value)} is not a Secret key (letters, digits, '-', '_' and '.')")
    return value


class SecretKeyRef(_Model):
    """One key of a Secret in the job's namespace."""

    name: Annotated[
        str,
        Field(min_length=1, max_length=bounds.NAME_MAX_LENGTH),
        AfterValidator(_secret_name),
    ]
    """The Secret's name (a DNS subdomain, as every object name)."""
    key: Annotated[
        str,
        Field(min_length=1, max_length=bounds.SECRET_KEY_MAX_LENGTH),
        AfterValidator(_secret_key),
    ]
    """The key in its ``data`` whose value is the URL."""


class WebhookFormat(StrEnum):
    """What a webhook's POST carries."""

    JSON = "json"
    """A JSON document with the run report's fields (docs/notifications.md)."""
    SLACK = "slack"
    """A Slack-compatible message, ``{"text": ...}`` (Slack, Mattermost, Rocket.Chat)."""


class Webhook(_Model):
    """Where a notification is POSTed: a URL given inline, or one kept in a Secret.
    Its form and host are checked against the operator's allow-list by the admission
    webhook and again at each delivery (:mod:`almanac.notifications.webhook`)."""

    url: Annotated[str, Field(min_length=1, max_length=bounds.WEBHOOK_URL_MAX_LENGTH)] | None = None
    """The URL, visible to anyone who can read the job: use ``urlSecretRef`` for a URL
    whose path or query is a credential (Slack's, Teams')."""
    url_secret_ref: SecretKeyRef | None = None
    """A key of a Secret in the job's namespace whose value is the URL."""
    format: WebhookFormat = WebhookFormat.JSON
    """json (default) or slack."""

    @model_validator(mode="after")
    def _one_url(self) -> Self:
        if (self.url is None) == (self.url_secret_ref is None):
            raise ValueError("give exactly one of url and urlSecretRef")
        return self


class Notifications(_Model):
    """E-mail and webhooks about finished and late runs."""

    on_success: _Flag = False
    """E-mail when a run succeeds."""
    on_failure: _Flag = False
    """E-mail when a run fails."""
    on_late: _Flag = False
    """E-mail when a run is still unfinished ``runDeadline`` after its scheduled time."""
    to: (
        Annotated[
            list[
                Annotated[
                    str, Field(max_length=bounds.RECIPIENT_MAX_LENGTH), AfterValidator(_email)
                ]
            ],
            Field(max_length=bounds.RECIPIENTS_MAX_ITEMS),
        ]
        | None
    ) = None
    """Recipients; absent means the operator's configured recipients."""
    webhooks: Annotated[list[Webhook], Field(max_length=bounds.WEBHOOKS_MAX_ITEMS)] = []
    """Webhooks POSTed to as well as the e-mail, when onSuccess, onFailure or onLate
    ask; each has its own delivery state in the run's status."""


class Service(_Model):
    """One step of a run: a batch/v1 Job made from ``jobTemplate``."""

    name: Annotated[str, AfterValidator(_service_name)]
    """Unique within the job; part of the Job's name and of the ``almanac.dev/service``
    label, hence a short DNS label (at most 20 characters, as the CRD says)."""
    mandatory: _Flag = False
    """If it fails, the non-async services after it do not start (phase Skipped)."""
    async_: _Flag = Field(default=False, alias="async")
    """Starts when the run starts and runs beside the others; list order is ignored."""
    job_template: dict[str, Any]
    """A batch/v1 JobTemplateSpec, as in CronJob (``metadata`` and ``spec``)."""


class ScheduledJobSpec(_Model):
    """What to run, when, and what to do about it."""

    schedule: Annotated[
        str, Field(max_length=bounds.SCHEDULE_MAX_LENGTH), _checked(CronExpression.parse)
    ]
    """5-field cron expression with names (JAN, MON) and macros (@daily, ...), read in
    ``timeZone``; day-of-month and day-of-week follow the Vixie rule. Day tokens:
    ``L``, ``L-n``, ``nW``, ``LW``, ``nB``, ``LB``, ``LB-n`` (day of month), ``d#k``,
    ``dL`` (day of week); docs/api.md "Business days and day tokens"."""
    time_zone: (
        Annotated[str, Field(max_length=bounds.TIME_ZONE_MAX_LENGTH), _checked(parse_time_zone)]
        | None
    ) = None
    """IANA zone name; absent means the operator's default zone (UTC out of the box)."""
    start_time: _DateTime | None = None
    """Nothing fires before this (inclusive). ``YYYY-MM-DDTHH:MM:SS``: without an offset,
    local time in ``timeZone``; with ``Z`` or ``+02:00``, that instant. Years 1970-2200."""
    end_time: _DateTime | None = None
    """Nothing fires after this (inclusive). Same format and years as ``startTime``."""
    exclusions: ExclusionLists = Field(default_factory=ExclusionLists)
    """Days on which nothing fires, as local dates in ``timeZone``."""
    calendar_refs: Annotated[
        list[CalendarRef], Field(max_length=bounds.CALENDAR_REFS_MAX_ITEMS)
    ] = []
    """Calendars (in the same namespace) and ClusterCalendars whose exclusions add to
    ``exclusions``."""
    on_excluded_day: OnExcludedDay = OnExcludedDay.SKIP
    """Skip | NextBusinessDay | PreviousBusinessDay: what happens to the fires of a date
    the cron matches but an exclusion removes (docs/api.md "Shifting")."""
    max_shift_days: Annotated[
        _Int, Field(ge=bounds.MAX_SHIFT_DAYS_MIN, le=bounds.MAX_SHIFT_DAYS_MAX)
    ] = bounds.MAX_SHIFT_DAYS_DEFAULT
    """How many days at most a shifted fire moves (1-31, default 7); further, it is
    dropped."""
    suspend: _Flag = False
    """True: the job does not fire (the "Enabled" switch, inverted)."""
    concurrency_policy: ConcurrencyPolicy = ConcurrencyPolicy.ALLOW
    """Allow | Forbid | Replace, as in CronJob (and its default, Allow)."""
    starting_deadline_seconds: (
        Annotated[_Int, Field(ge=0, le=bounds.STARTING_DEADLINE_SECONDS_MAX)] | None
    ) = None
    """How late (in seconds) a missed fire may still start, at most a year; absent: no
    limit."""
    catch_up: CatchUp = CatchUp.LATEST
    """Latest | All | None: which missed fires start (docs/api.md "Missed fires")."""
    run_deadline: (
        Annotated[
            str, Field(max_length=bounds.RUN_DEADLINE_MAX_LENGTH), AfterValidator(_run_deadline)
        ]
        | None
    ) = None
    """How long after its scheduled time a run may take before it is Late (``2h``,
    ``90m``, ``1h30m``; 1s to 744h): condition Late, a RunLate Event, the metric and,
    with ``notifications.onLate``, an e-mail. Absent: no deadline."""
    successful_runs_history_limit: Annotated[_Int, Field(ge=0, le=bounds.HISTORY_LIMIT_MAX)] = 3
    """Finished successful runs to keep (CronJob's default, 3), at most 1,000."""
    failed_runs_history_limit: Annotated[_Int, Field(ge=0, le=bounds.HISTORY_LIMIT_MAX)] = 1
    """Finished failed runs to keep (CronJob's default, 1), at most 1,000."""
    notifications: Notifications = Field(default_factory=Notifications)
    """E-mail on success and/or failure."""
    services: Annotated[
        list[Service],
        Field(min_length=bounds.SERVICES_MIN_ITEMS, max_length=bounds.SERVICES_MAX_ITEMS),
    ]
    """Run in this order (async ones beside the others); 1 to 50, as the CRD says."""

    def deadline(self) -> timedelta | None:
        """``runDeadline`` as a duration; None without one."""
        return None if self.run_deadline is None else parse_duration(self.run_deadline)

    @field_validator("calendar_refs")
    @classmethod
    def _one_reference_per_calendar(cls, refs: list[CalendarRef]) -> list[CalendarRef]:
        """The CRD keeps ``calendarRefs`` as a map keyed by (kind, name): the API server
        refuses a second reference to one calendar, so the webhook and ``almanac next``
        refuse it too, naming the first (a Calendar and a ClusterCalendar of one name are
        two calendars)."""
        seen: dict[str, int] = {}
        for i, ref in enumerate(refs):
            first = seen.setdefault(ref.key(), i)
            if first != i:
                raise _SubfieldError(
                    f"[{i}]",
                    f"{ref.kind} {quote(ref.name)} is already spec.calendarRefs[{first}]",
                )
        return refs

    @field_validator("services")
    @classmethod
    def _unique_service_names(cls, services: list[Service]) -> list[Service]:
        seen: dict[str, int] = {}
        for i, service in enumerate(services):
            if service.name in seen:
                raise ValueError(
                    f"services[{i}].name {quote(service.name)} is already the name of "
                    f"services[{seen[service.name]}]; service names must be unique"
                )
            seen[service.name] = i
        return services

    def build_schedule(
        self, calendars: Mapping[str, Calendar], *, default_time_zone: str = "UTC"
    ) -> Schedule:
        """The engine's schedule: this spec plus the Calendars it refers to, by
        :meth:`CalendarRef.key` (a Calendar by name, a ClusterCalendar as
        ``ClusterCalendar/<name>``).

        :class:`InvalidSpec` when a referenced Calendar is not in ``calendars``, has a
        feed not fetched yet, or the window ends before it starts. ``default_time_zone``
        is used without ``timeZone``. The errors of a missing and of an unfetched
        Calendar carry the reasons ``CalendarNotFound`` and ``CalendarNotFetched``.
        """
        errors: list[FieldError] = []
        sources = [self.exclusions.to_exclusions()]
        for i, ref in enumerate(self.calendar_refs):
            calendar = calendars.get(ref.key())
            if calendar is None:
                errors.append(
                    FieldError(
                        f"spec.calendarRefs[{i}].name",
                        f"{ref.kind} {quote(ref.name)} not found",
                        reason="CalendarNotFound",
                    )
                )
                continue
            try:
                sources.append(calendar.exclusions())
            except CalendarNotFetched as e:
                errors.append(
                    FieldError(f"spec.calendarRefs[{i}]", str(e), reason="CalendarNotFetched")
                )
        exclusions = Exclusions.union(sources)
        try:
            schedule = Schedule.build(
                self.schedule,
                time_zone=self.time_zone,
                default_time_zone=default_time_zone,
                start_time=self.start_time,
                end_time=self.end_time,
                exclusions=exclusions,
                on_excluded_day=self.on_excluded_day,
                max_shift_days=self.max_shift_days,
            )
        except InvalidSpec as e:
            raise InvalidSpec([*errors, *e.errors]) from None
        if errors:
            raise InvalidSpec(errors)
        return schedule


class LastRun(_Status):
    """The most recent run of a job."""

    name: str | None = None
    """The ScheduledJobRun's name."""
    phase: str | None = None
    """Pending | Running | Succeeded | Failed."""
    scheduled_time: str | None = None
    """The run's ``spec.scheduledTime``: a run pruned by the history limits stays the
    last run until a run scheduled after it exists (:func:`almanac.rules.policy.summarize`)."""


class MissedSchedules(_Status):
    """Fires that were not started: operator down past the deadline, Forbid, suspended."""

    count: int = 0
    """How many fires were not started, since the job was created."""
    last_missed_time: str | None = None
    """The latest of them (RFC 3339); fires up to it are never started later."""
    message: str | None = None
    """Which fires, and why."""


class ScheduledJobStatus(_Status):
    """Written by the operator; lenient on input so that a status never makes a job invalid."""

    next_schedule_time: str | None = None
    """The next fire, RFC 3339 UTC; absent when it never fires."""
    last_schedule_time: str | None = None
    """The latest fire that created a run."""
    last_successful_time: str | None = None
    """The scheduled time of the latest successful run (the fire it stands for)."""
    active: list[str] = []
    """Names of the runs not finished yet."""
    last_run: LastRun | None = None
    """The latest run's name and phase."""
    missed_schedules: MissedSchedules | None = None
    """Fires that were not started, and why."""
    observed_generation: int | None = None
    """The generation this status was computed from."""
    conditions: list[Condition] = []
    """``Ready``: False with the reason when the spec is invalid or never fires."""


class ScheduledJob(_Lenient):
    """A calendar-aware scheduled job (docs/api.md "ScheduledJob")."""

    api_version: Literal["almanac.dev/v1alpha1"] = API_VERSION
    """Always ``almanac.dev/v1alpha1``."""
    kind: Literal["ScheduledJob"] = "ScheduledJob"
    """Always ``ScheduledJob``."""
    metadata: ScheduledJobMeta
    """Name and namespace; runs and their Jobs are named after it."""
    spec: ScheduledJobSpec
    """What to run and when."""
    status: ScheduledJobStatus | None = None
    """Written by the operator."""

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> Self:
        """Validate a body; :class:`InvalidSpec` names every bad field."""
        return _parse(cls, body)


# --------------------------------------------------------------------------------------
# Backfill


def _instant(value: str) -> str:
    """An RFC 3339 instant with its offset (``2027-01-04T00:00:00Z``), in the years of
    :mod:`almanac.api.bounds`: a Backfill's range is instants, not local times."""
    problem = bounds.year_error(parse_instant(value).year)
    if problem:
        raise ValueError(f"{problem} (got {quote(value)})")
    return value


_Instant = Annotated[
    str, Field(min_length=1, max_length=bounds.INSTANT_MAX_LENGTH), AfterValidator(_instant)
]


class BackfillOrder(StrEnum):
    """Which instants of a Backfill's range get their runs first."""

    OLDEST = "Oldest"
    """From ``from`` forwards (the default: a settlement needs yesterday's first)."""
    NEWEST = "Newest"
    """From just before ``to`` backwards (the most recent data first)."""


class BackfillSpec(_Model):
    """Runs of a ScheduledJob for the past instants its schedule would have fired."""

    scheduled_job: Annotated[
        str, Field(min_length=1, max_length=bounds.SCHEDULED_JOB_NAME_MAX_LENGTH)
    ]
    """The ScheduledJob, in the Backfill's namespace, whose fires are backfilled."""
    from_: _Instant = Field(alias="from")
    """The range's first instant (inclusive), RFC 3339 with an offset."""
    to: _Instant
    """The range's end (exclusive), RFC 3339 with an offset; later than ``from``."""
    parallelism: Annotated[_Int, Field(ge=1, le=bounds.BACKFILL_PARALLELISM_MAX)] = 1
    """How many of the Backfill's runs may be unfinished at once (1-100, default 1)."""
    order: BackfillOrder = BackfillOrder.OLDEST
    """Oldest | Newest: which end of the range is run first."""

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if parse_instant(self.to) <= parse_instant(self.from_):
            raise _SubfieldError(
                "to", f"{quote(self.to)} must be later than from ({quote(self.from_)})"
            )
        return self

    @property
    def start(self) -> datetime:
        """``from`` as an aware datetime, to the second: fires fall on whole seconds, so
        a fraction counts as if rounded down (``02:00:00.5`` keeps the fire at 02:00)."""
        return parse_instant(self.from_).replace(microsecond=0)

    @property
    def end(self) -> datetime:
        """``to`` as an aware datetime, to the second: rounded down as ``from`` is
        (``02:00:00.5`` leaves the fire at 02:00 out, as ``02:00:00`` does)."""
        return parse_instant(self.to).replace(microsecond=0)


class Backfill(_Lenient):
    """Runs of a ScheduledJob for a past range (docs/api.md "Backfill")."""

    api_version: Literal["almanac.dev/v1alpha1"] = API_VERSION
    """Always ``almanac.dev/v1alpha1``."""
    kind: Literal["Backfill"] = "Backfill"
    """Always ``Backfill``."""
    metadata: ObjectMeta
    """Name and namespace; its runs carry the name in the ``almanac.dev/backfill`` label."""
    spec: BackfillSpec
    """Which job and which range; fixed once created."""

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> Self:
        """Validate a body; :class:`InvalidSpec` names every bad field."""
        return _parse(cls, body)


# --------------------------------------------------------------------------------------
# ValidationError -> InvalidSpec


_M = TypeVar("_M", bound=BaseModel)


def _parse(model: type[_M], body: Mapping[str, Any]) -> _M:
    try:
        return model.model_validate(body)
    except ValidationError as e:
        raise InvalidSpec(_field_error(error) for error in e.errors(include_url=False)) from None


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path


def _known_fields() -> list[str]:
    models: list[type[BaseModel]] = [
        ObjectMeta,
        ExclusionLists,
        HolidaySource,
        CalendarSpec,
        CalendarSource,
        KeyRef,
        CalendarRef,
        Notifications,
        SecretKeyRef,
        Webhook,
        Service,
        ScheduledJobSpec,
        ScheduledJob,
        Calendar,
        BackfillSpec,
    ]
    return sorted({f.alias or name for m in models for name, f in m.model_fields.items()})


def _field_error(error: Any) -> FieldError:
    kind, value, path = error["type"], error.get("input"), _path(error["loc"])
    if kind == "value_error":
        cause = error["ctx"]["error"]
        message = str(cause)
        if isinstance(cause, _SubfieldError):  # no dot at the root, nor before an index
            joint = "" if not path or cause.field.startswith("[") else "."
            path = f"{path}{joint}{cause.field}"
    elif kind == "missing":
        message = "is required"
    elif kind == "extra_forbidden":
        field = str(error["loc"][-1])
        # Not the field itself: a name known elsewhere (a Calendar's ``holidays``) is not
        # one this part has (a job's ``exclusions``), so suggesting it would go in a circle.
        known = [name for name in _known_fields() if name != field]
        close = difflib.get_close_matches(field, known, n=1, cutoff=0.75)
        message = "is not a known field" + (f"; did you mean {close[0]}?" if close else "")
    elif kind == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
        message = f"expected a string, got the number {value!r}; quote it in YAML"
    elif kind == "string_type" and isinstance(value, bool):
        # YAML 1.1 reads yes/no/on/off/true/false unquoted as booleans (monthly: [yes]).
        message = f"expected a string, got the boolean {str(value).lower()}; quote it in YAML"
    elif kind == "bool_type":
        unquote = "; write it unquoted" if value in ("true", "false") else ""
        message = f"expected a boolean (true or false), got {quote(value)}{unquote}"
    elif kind in ("literal_error", "enum"):
        expected = str(error["ctx"]["expected"]).replace("'", "")
        message = f"{quote(value)} is not one of {expected}"
    elif kind == "too_short":
        message = f"needs at least {error['ctx']['min_length']} item"
    elif kind == "too_long":
        message = (
            f"has {error['ctx']['actual_length']} items; at most "
            f"{error['ctx']['max_length']} are allowed"
        )
    elif kind == "string_too_short":
        message = "must not be empty"
    elif kind == "string_too_long":
        message = (
            f"is {len(value)} characters long; at most {error['ctx']['max_length']} are "
            f"allowed (got {quote(value[:40] + '...' if len(value) > 40 else value)})"
        )
    elif kind == "greater_than_equal":
        message = f"must be at least {error['ctx']['ge']} (got {quote(value)})"
    elif kind == "less_than_equal":
        message = f"must be at most {error['ctx']['le']} (got {quote(value)})"
    else:
        message = f"{error['msg']} (got {quote(value)})"
    return FieldError(path, message)
