"""The CRDs are the source of truth; the pydantic models must mirror them.

Field names (camelCase, recursively) and scalar defaults of ScheduledJob and Calendar
must agree both ways: a field the CRD has and the model lacks would be refused by the
operator; one the model has and the CRD lacks would be pruned by the API server.
"""

from __future__ import annotations

import functools
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from almanac.api.models import Backfill, Calendar, ClusterCalendar, ScheduledJob, ScheduledJobSpec
from almanac.errors import InvalidSpec

CRDS = Path(__file__).resolve().parent.parent.parent / "crds"


def crd_schema(kind: str) -> dict[str, Any]:
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            return schema
    raise AssertionError(f"no CRD for {kind} in {CRDS}")


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside X, X | None, list[X] or Annotated[X, ...], if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = nested_model(arg)
        if found is not None:
            return found
    if isinstance(annotation, types.UnionType):
        return next((m for a in annotation.__args__ if (m := nested_model(a))), None)
    return None


def disagreements(model: type[BaseModel], schema: dict[str, Any], path: str) -> list[str]:
    schema = schema.get("items", schema)  # a list of objects: compare the item
    properties = schema.get("properties", {})
    if not properties:
        return []  # free-form (jobTemplate): nothing to mirror
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    problems = [
        f"{path}.{n}: in the CRD, not in {model.__name__}"
        for n in sorted(properties.keys() - fields.keys())
    ]
    problems += [
        f"{path}.{n}: in {model.__name__}, not in the CRD"
        for n in sorted(fields.keys() - properties.keys())
    ]
    for name in sorted(fields.keys() & properties.keys()):
        field, prop = fields[name], properties[name]
        default = field.default
        if (
            "default" in prop
            and isinstance(default, bool | int | str)
            and default != prop["default"]
        ):
            problems.append(
                f"{path}.{name}: default {default!r} in the model, {prop['default']!r} in the CRD"
            )
        inner = nested_model(field.annotation)
        if inner is not None:
            problems += disagreements(inner, prop, f"{path}.{name}")
    return problems


@pytest.mark.parametrize(
    ("model", "kind", "part"),
    [
        (ScheduledJob, "ScheduledJob", "spec"),
        (ScheduledJob, "ScheduledJob", "status"),
        (Calendar, "Calendar", "spec"),
        (Calendar, "Calendar", "status"),
        (ClusterCalendar, "ClusterCalendar", "spec"),
        (ClusterCalendar, "ClusterCalendar", "status"),
        (Backfill, "Backfill", "spec"),
    ],
    ids=[
        "ScheduledJob spec",
        "ScheduledJob status",
        "Calendar spec",
        "Calendar status",
        "ClusterCalendar spec",
        "ClusterCalendar status",
        "Backfill spec",
    ],
)
def test_the_model_mirrors_the_crd(model: type[BaseModel], kind: str, part: str) -> None:
    inner = nested_model(model.model_fields[part].annotation)
    assert inner is not None
    assert disagreements(inner, crd_schema(kind)["properties"][part], part) == []


# --------------------------------------------------------------------------------------
# Duration fields: the CRD (pattern and CEL rule) and the model give one verdict


def _go_duration(text: str) -> float:
    """Go's time.ParseDuration for the h/m/s forms these patterns admit (CEL's
    duration()); ValueError on overflow, as Go's refuses past 2562047h."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    assert match and text, text
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total * 10**9 > 2**63 - 1:
        raise ValueError(f"time: invalid duration {text!r}")
    return float(total)


def _cel(rule: str, value: str) -> bool:
    """The subset of CEL these rules use, evaluated in Python: `self != ''`,
    `self.matches('re')` (RE2 search), `duration(...)`, comparisons, `&&`, `||`, `!`. An
    evaluation error refuses the object, as the API server does."""
    python = re.sub(r"self\.matches\('([^']*)'\)", r"_search(r'\1', self)", rule.strip())
    python = python.replace("&&", " and ").replace("||", " or ")
    python = re.sub(r"!(?!=)", " not ", python)
    python = re.sub(r"duration\('([^']*)'\)", r"_go_duration('\1')", python)
    python = python.replace("duration(self)", "_go_duration(self)")

    def search(pattern: str, text: str) -> bool:
        return re.search(re.sub(r"\$$", r"\\Z", pattern), text) is not None

    try:
        return bool(eval(python, {"_search": search, "_go_duration": _go_duration, "self": value}))
    except ValueError:
        return False


@functools.cache
def string_field(kind: str, *path: str) -> dict[str, Any]:
    """A field's schema node, by property names under ``properties`` (read once)."""
    node = crd_schema(kind)
    for name in path:
        node = node["properties"][name]
    return node


def crd_admits(node: dict[str, Any], value: str) -> bool:
    """A string field's verdict: maxLength, pattern and every CEL rule."""
    if len(value) > node.get("maxLength", len(value)):
        return False
    if "pattern" in node and not re.search(re.sub(r"\$$", r"\\Z", node["pattern"]), value):
        return False
    return all(_cel(r["rule"], value) for r in node.get("x-kubernetes-validations", []))


DURATIONS = [
    "",
    "0s",
    "1s",
    "5s",
    "9s",
    "10s",
    "90s",
    "1h30m",
    "1h60m",
    "60m",
    "168h",
    "169h",
    "744h",
    "745h",
    "2562048h",
    "9999999h",
    "99999999999h",
    "1000000s",
    "00000010s",
    "1d",
    "1.5h",
    "2 hours",
]


@pytest.mark.parametrize("value", DURATIONS)
def test_the_crd_and_the_model_agree_on_a_refresh_interval(value: str) -> None:
    node = string_field("Calendar", "spec", "source", "refreshInterval")
    body = {
        "metadata": {"name": "c"},
        "spec": {
            "source": {"configMapKeyRef": {"name": "days", "key": "ics"}, "refreshInterval": value}
        },
    }
    try:
        Calendar.parse(body)
        model_admits = True
    except InvalidSpec:
        model_admits = False
    assert crd_admits(node, value) is model_admits


@pytest.mark.parametrize("value", DURATIONS)
def test_the_crd_and_the_model_agree_on_a_run_deadline(value: str) -> None:
    node = string_field("ScheduledJob", "spec", "runDeadline")
    try:
        ScheduledJobSpec.model_validate(
            {
                "schedule": "0 3 * * *",
                "runDeadline": value,
                "services": [{"name": "a", "jobTemplate": {}}],
            }
        )
        model_admits = True
    except ValidationError:
        model_admits = False
    assert crd_admits(node, value) is model_admits


# --------------------------------------------------------------------------------------
# Scalar types: what the CRD's `type: boolean` / `type: integer` refuses, the model refuses


def _job_with(field: str, value: object) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "schedule": "0 3 * * *",
        "services": [{"name": "a", "jobTemplate": {"spec": {}}}],
    }
    if field.startswith("services[0]."):
        spec["services"][0][field.removeprefix("services[0].")] = value
    elif field.startswith("notifications."):
        spec["notifications"] = {field.removeprefix("notifications."): value}
    else:
        spec[field] = value
    return {"metadata": {"name": "j"}, "spec": spec}


@pytest.mark.parametrize(
    ("field", "value", "crd_type"),
    [
        ("suspend", "yes", "boolean"),
        ("suspend", "true", "boolean"),
        ("suspend", 1, "boolean"),
        ("services[0].mandatory", "true", "boolean"),
        ("services[0].async", 0, "boolean"),
        ("notifications.onFailure", "on", "boolean"),
        ("notifications.onSuccess", 1, "boolean"),
        ("notifications.onLate", "false", "boolean"),
        ("maxShiftDays", "7", "integer"),
        ("startingDeadlineSeconds", "300", "integer"),
        ("successfulRunsHistoryLimit", "3", "integer"),
        ("failedRunsHistoryLimit", True, "integer"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_as_the_crd_refuses_it(
    field: str, value: object, crd_type: str
) -> None:
    """The API server refuses `suspend: "yes"` (`type: boolean`) and `maxShiftDays: "7"`
    (`type: integer`); the model must not read them as true and 7, or `almanac next`
    passes a manifest that `kubectl apply` refuses."""
    node = crd_schema("ScheduledJob")["properties"]["spec"]
    for part in field.replace("[0]", "").split("."):
        node = node.get("items", node)["properties"][part]
    assert node["type"] == crd_type
    with pytest.raises(InvalidSpec) as refused:
        ScheduledJob.parse(_job_with(field, value))
    [error] = refused.value.errors
    assert error.path == f"spec.{field}"
    assert ("boolean" if crd_type == "boolean" else "integer") in error.message


def test_a_backfill_parallelism_that_is_a_string_is_refused() -> None:
    body = {
        "metadata": {"name": "b"},
        "spec": {
            "scheduledJob": "j",
            "from": "2027-01-01T00:00:00Z",
            "to": "2027-01-02T00:00:00Z",
            "parallelism": "2",
        },
    }
    with pytest.raises(InvalidSpec, match=r"spec\.parallelism: .*integer"):
        Backfill.parse(body)


# --------------------------------------------------------------------------------------
# Exclusion entries: the API server and `almanac next` say the same sentence (crds.md)


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        (kind, path, value)
        for kind, prefix in (
            ("ScheduledJob", ("spec", "exclusions")),
            ("Calendar", ("spec",)),
            ("ClusterCalendar", ("spec",)),
        )
        for path, value in (
            ((*prefix, "annual"), "31.02"),
            ((*prefix, "monthly"), "32"),
            ((*prefix, "weekly"), "Sa"),
            ((*prefix, "holiday"), "29.02.2027"),
        )
    ],
)
def test_the_crd_refuses_a_bad_exclusion_entry_with_the_models_message(
    kind: str, path: tuple[str, ...], value: str
) -> None:
    node = string_field(kind, *path)["items"]
    [rule] = [r for r in node["x-kubernetes-validations"] if "year is outside" not in str(r)]
    # The messageExpressions are string concatenations of `self` (or `string(self)`).
    crd_message = eval(rule["messageExpression"], {"self": value, "string": str})
    body: dict[str, Any] = {"metadata": {"name": "x"}, "spec": {}}
    lists = body["spec"]
    if path[1] == "exclusions":
        body["spec"] = {
            "schedule": "0 3 * * *",
            "services": [{"name": "a", "jobTemplate": {}}],
            "exclusions": {},
        }
        lists = body["spec"]["exclusions"]
    lists[path[-1]] = [value]
    model = {"ScheduledJob": ScheduledJob, "Calendar": Calendar}.get(kind, ClusterCalendar)
    with pytest.raises(InvalidSpec) as refused:
        model.parse(body)
    [error] = refused.value.errors
    assert error.message == crd_message


def without_descriptions(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: without_descriptions(v) for k, v in schema.items() if k != "description"}
    if isinstance(schema, list):
        return [without_descriptions(v) for v in schema]
    return schema


# metav1.Condition as the API server's OpenAPI describes it (and `controller-gen` writes
# it into every CRD with conditions): crds.md "Conditions have the schema of
# metav1.Condition". The type is a qualified name, as for every condition in Kubernetes.
METAV1_CONDITION_REQUIRED = ["type", "status", "reason", "message", "lastTransitionTime"]
METAV1_CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)


@pytest.mark.parametrize("kind", ["ScheduledJob", "ScheduledJobRun", "Calendar", "ClusterCalendar"])
def test_every_condition_item_has_the_schema_of_metav1_condition(kind: str) -> None:
    """One condition item in every CRD (crds.md), so a condition one kind accepts every
    kind accepts, and the API server checks each as it checks metav1.Condition."""
    conditions = crd_schema(kind)["properties"]["status"]["properties"]["conditions"]
    item = conditions["items"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert item["required"] == METAV1_CONDITION_REQUIRED
    assert item["properties"]["type"]["pattern"] == METAV1_CONDITION_TYPE_PATTERN
    reference = crd_schema("ScheduledJob")["properties"]["status"]["properties"]["conditions"]
    assert without_descriptions(conditions) == without_descriptions(reference)


def test_the_printer_columns_are_those_crds_md_shows() -> None:
    """crds.md "Printer columns": each kind's `kubectl get` columns in order (-o wide's
    after), and which are `date` columns (shown as ages)."""
    import re

    docs = (CRDS.parent / "docs" / "crds.md").read_text()
    section = docs[docs.index("## Printer columns") : docs.index("## Name lengths")]
    kinds = {"sj": "ScheduledJob", "sjr": "ScheduledJobRun", "cal": "Calendar", "bf": "Backfill"}
    dates: set[tuple[str, str]] = set()
    for short, kind in kinds.items():
        line = re.search(rf"^kubectl get {short} +NAME +(.*)$", section, re.M)
        assert line is not None, short
        shown, _, wide = line.group(1).partition("(-o wide adds ")
        crd = next(
            yaml.safe_load(p.read_text())
            for p in CRDS.glob("*.yaml")
            if yaml.safe_load(p.read_text())["spec"]["names"]["kind"] == kind
        )
        columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        assert [c["name"].upper() for c in columns if not c.get("priority")] == shown.split()
        assert [c["name"].upper() for c in columns if c.get("priority")] == re.findall(
            r"[A-Z]+", wide
        )
        dates |= {(kind, c["name"].upper()) for c in columns if c["type"] == "date"}
        if kind == "ScheduledJob":
            next_ = next(c for c in columns if c["name"] == "Next")
            assert next_["type"] == "string"  # a date in the future shows as <invalid>
    said = re.search(
        r"(LAST[^.]*?),? and a Backfill's ([^.]*?)\s+are `date` columns", section, re.S
    )
    assert said is not None
    every, backfill = (set(re.findall(r"[A-Z]{2,}", g)) for g in said.groups())
    documented = {
        (k, n) for k, n in dates if n in every or (k, n in backfill) == ("Backfill", True)
    }
    assert sorted(dates - documented) == []
    assert "A ScheduledJob's NEXT is the instant itself" in section
