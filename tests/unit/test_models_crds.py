"""The CRDs are the source of truth; the pydantic models must mirror them.

Field names (camelCase, recursively) and scalar defaults of ScheduledJob and Calendar
must agree both ways: a field the CRD has and the model lacks would be refused by the
operator; one the model has and the CRD lacks would be pruned by the API server.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from almanac.api.models import Backfill, Calendar, ClusterCalendar, ScheduledJob

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
