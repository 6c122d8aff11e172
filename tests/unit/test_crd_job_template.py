"""The services' jobTemplate schema: generated from batch/v1 JobTemplateSpec by
hack/crd-job-template.py, structural, and nowhere preserving unknown fields.

The test against the real Kubernetes OpenAPI document is skipped, saying so, when the Go
module cache lacks it; the conversion itself is tested on small documents.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.integration.objects import service

REPO = Path(__file__).resolve().parent.parent.parent
CRDS = sorted((REPO / "crds").glob("*.yaml"))
P = "#/components/schemas/"


def _load_generator() -> ModuleType:
    path = REPO / "hack" / "crd-job-template.py"
    spec = importlib.util.spec_from_file_location("crd_job_template", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


def root_schema(path: Path) -> dict[str, Any]:
    schema: dict[str, Any] = yaml.safe_load(path.read_text())["spec"]["versions"][0]["schema"][
        "openAPIV3Schema"
    ]
    return schema


def service_item(name: str) -> dict[str, Any]:
    item: dict[str, Any] = root_schema(REPO / "crds" / name)["properties"]["spec"]["properties"][
        "services"
    ]["items"]
    return item


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node: the root, each property, each array's items, each map's values."""
    yield path or ".", schema
    for name, prop in schema.get("properties", {}).items():
        yield from nodes(prop, f"{path}.{name}")
    if "items" in schema:
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


# --------------------------------------------------------------------------------------
# the committed CRDs


def test_no_field_of_ours_preserves_unknown_fields() -> None:
    offenders = [p.name for p in CRDS if "x-kubernetes-preserve-unknown-fields" in p.read_text()]
    assert offenders == [], "an object with unknown fields kept can nest without bound"


@pytest.mark.parametrize("path", CRDS, ids=lambda p: p.name)
def test_crd_schema_is_structural(path: Path) -> None:
    every = list(nodes(root_schema(path)))
    untyped = [w for w, n in every if not n.get("type") and not n.get("x-kubernetes-int-or-string")]
    no_items = [w for w, n in every if n.get("type") == "array" and "items" not in n]
    assert (untyped, no_items) == ([], [])


def test_the_service_item_is_the_same_in_scheduledjob_and_scheduledjobrun() -> None:
    assert service_item("almanac.dev_scheduledjobs.yaml") == service_item(
        "almanac.dev_scheduledjobruns.yaml"
    )


def test_committed_job_template_is_the_generators_output() -> None:
    source = gen.openapi_path()
    if not source.exists():
        pytest.skip(f"{source} is absent: `cd hack/tools/k8s && go mod download k8s.io/kubernetes`")
    stale = [p.name for p, text in gen.generate(source).items() if p.read_text() != text]
    assert stale == [], "run `make crd-schemas` (then `make manifests`)"


def test_crds_fit_the_client_side_apply_annotation_and_etcd() -> None:
    """kubectl's client-side apply keeps the object as compact JSON in an annotation
    (annotations: 256 KiB in all); etcd's request limit is 1.5 MiB."""
    for path in CRDS:
        size = len(json.dumps(yaml.safe_load(path.read_text()), separators=(",", ":")))
        assert size < 256 * 1024, f"{path.name} is {size} bytes as JSON"


# --------------------------------------------------------------------------------------
# what users and tests apply


def conformance(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """What the API server would prune (unknown fields) or refuse (type, required)."""
    if schema.get("x-kubernetes-int-or-string"):
        fits = isinstance(value, int | str) and not isinstance(value, bool)
        return [] if fits else [f"{path}: not an integer or a string"]
    python = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool}
    kind = schema["type"]
    if not isinstance(value, python[kind]) or (isinstance(value, bool) and kind != "boolean"):
        return [f"{path}: not of type {kind}"]
    problems = []
    if kind == "array":
        for i, item in enumerate(value):
            problems += conformance(item, schema["items"], f"{path}[{i}]")
    elif kind == "object":
        problems += [f"{path}.{k}: required" for k in schema.get("required", []) if k not in value]
        for key, item in value.items():
            sub = schema.get("properties", {}).get(key, schema.get("additionalProperties"))
            if sub is None:
                problems.append(f"{path}.{key}: unknown (pruned, or refused by kubectl)")
            else:
                problems += conformance(item, sub, f"{path}.{key}")
    return problems


def job_templates() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted((REPO / "manifests" / "samples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "ScheduledJob":
                for s in doc["spec"]["services"]:
                    yield f"{path.name} {s['name']}", s["jobTemplate"]
    built = service("x", mandatory=True, async_=True, exit_code=3, duration="5s")
    yield "tests/integration/objects.py service()", built["jobTemplate"]


@pytest.mark.parametrize(("where", "template"), list(job_templates()), ids=lambda v: v)
def test_samples_and_test_objects_fit_the_job_template_schema(
    where: str, template: dict[str, Any]
) -> None:
    schema = service_item("almanac.dev_scheduledjobs.yaml")["properties"]["jobTemplate"]
    assert conformance(template, schema, "jobTemplate") == []


def test_a_mistyped_or_unknown_field_does_not_fit() -> None:
    schema = service_item("almanac.dev_scheduledjobs.yaml")["properties"]["jobTemplate"]
    template = service("x")["jobTemplate"]
    pod = template["spec"]["template"]["spec"]
    pod["containres"] = pod.pop("containers")
    template["metadata"] = {"name": "mine", "annotations": {"deep": {"deeper": {}}}}
    assert sorted(conformance(template, schema, "jobTemplate")) == [
        "jobTemplate.metadata.annotations.deep: not of type string",
        "jobTemplate.metadata.name: unknown (pruned, or refused by kubectl)",
        "jobTemplate.spec.template.spec.containers: required",
        "jobTemplate.spec.template.spec.containres: unknown (pruned, or refused by kubectl)",
    ]


# --------------------------------------------------------------------------------------
# the conversion, on small documents

SCHEMAS: dict[str, Any] = {
    "Ref": {
        "type": "object",
        "description": "dropped",
        "x-kubernetes-map-type": "atomic",
        "properties": {"n": {"type": "integer", "format": "int32", "default": 0}},
    },
    "IntOrString": {"format": "int-or-string", "oneOf": [{"type": "integer"}, {"type": "string"}]},
    "Quantity": {"oneOf": [{"type": "string"}, {"type": "number"}]},
    "Port": {
        "type": "object",
        "required": ["containerPort"],
        "properties": {
            "containerPort": {"type": "integer", "format": "int32", "default": 0},
            "protocol": {"type": "string", "default": "TCP", "description": "dropped"},
        },
    },
    "Loop": {"type": "object", "properties": {"next": {"allOf": [{"$ref": P + "Loop"}]}}},
}
REF_OUT = {
    "type": "object",
    "x-kubernetes-map-type": "atomic",
    "properties": {"n": {"type": "integer", "format": "int32"}},
}


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"$ref": P + "Ref"}, REF_OUT),
        ({"allOf": [{"$ref": P + "Ref"}], "default": {}, "description": "dropped"}, REF_OUT),
        ({"$ref": P + "IntOrString"}, {"x-kubernetes-int-or-string": True}),
        (
            {"allOf": [{"$ref": P + "Quantity"}]},
            {"x-kubernetes-int-or-string": True, "pattern": gen.QUANTITY_PATTERN},
        ),
        (
            {
                "type": "array",
                "items": {"$ref": P + "Port"},
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                "x-kubernetes-patch-strategy": "merge",
                "x-kubernetes-patch-merge-key": "containerPort",
            },
            {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                "items": {
                    "type": "object",
                    "required": ["containerPort"],
                    "properties": {
                        "containerPort": {"type": "integer", "format": "int32"},
                        # not required: the API server wants a default for a list-map key
                        "protocol": {"type": "string", "default": "TCP"},
                    },
                },
            },
        ),
        (
            {"type": "object", "additionalProperties": {"$ref": P + "Quantity"}},
            {
                "type": "object",
                "additionalProperties": {
                    "x-kubernetes-int-or-string": True,
                    "pattern": gen.QUANTITY_PATTERN,
                },
            },
        ),
    ],
    ids=["$ref", "allOf wrapper", "IntOrString", "Quantity", "list-map", "map of quantities"],
)
def test_conversion(node: dict[str, Any], expected: dict[str, Any]) -> None:
    assert gen.Converter(SCHEMAS).convert(node) == expected


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"$ref": P + "Loop"}, "recursive reference Loop -> Loop"),
        ({"properties": {"a": {"type": "string"}}}, "no type"),
        ({"type": "string", "x-kubernetes-validations": []}, "unexpected keyword"),
        ({"type": "string", "format": "uuid"}, "format 'uuid'"),
        ({"oneOf": [{"type": "boolean"}, {"type": "string"}]}, "oneOf"),
        (
            {
                "type": "array",
                "items": {"type": "object", "properties": {"k": {"type": "string"}}},
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["k"],
            },
            "neither required nor defaulted",
        ),
    ],
    ids=["recursion", "untyped", "unknown keyword", "format", "oneOf", "list-map key"],
)
def test_conversion_refuses_what_a_crd_cannot_hold(node: dict[str, Any], message: str) -> None:
    with pytest.raises(gen.SchemaError, match=message):
        gen.Converter(SCHEMAS).convert(node)


def tiny_document() -> dict[str, Any]:
    meta = {"allOf": [{"$ref": P + gen.OBJECT_META}], "default": {}}
    return {
        "components": {
            "schemas": {
                gen.ROOT: {
                    "type": "object",
                    "properties": {"metadata": meta, "spec": {"$ref": P + "JobSpec"}},
                },
                "JobSpec": {
                    "type": "object",
                    "properties": {
                        "template": {"$ref": P + "PodTemplateSpec"},
                        "backoffLimit": {"type": "integer", "format": "int32"},
                    },
                },
                "PodTemplateSpec": {"type": "object", "properties": {"metadata": meta}},
                gen.OBJECT_META: {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "annotations": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        },
                        "ownerReferences": {"type": "array", "items": {"type": "object"}},
                    },
                },
            }
        }
    }


def test_job_template_restricts_metadata_and_requires_spec_and_template() -> None:
    schema = gen.job_template_schema(tiny_document())
    strings = {"type": "object", "additionalProperties": {"type": "string"}}
    meta = {"type": "object", "properties": {"annotations": strings, "labels": strings}}
    assert schema == {
        "description": gen.DESCRIPTION,
        "type": "object",
        "required": ["spec"],
        "properties": {
            "metadata": meta,
            "spec": {
                "type": "object",
                "required": ["template"],
                "properties": {
                    "template": {"type": "object", "properties": {"metadata": meta}},
                    "backoffLimit": {"type": "integer", "format": "int32"},
                },
            },
        },
    }
    assert "kubectl explain job.spec" in gen.DESCRIPTION


def test_splice_rewrites_only_the_block_under_job_template() -> None:
    before = "# hand-written\nitems:\n  properties:\n    jobTemplate:\n"
    after = "    other:  # hand-written too\n      type: string\nstatus: {}\n"
    old = "      type: object\n\n      x-kubernetes-preserve-unknown-fields: true\n"
    schema = {"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object"}}}
    text = gen.splice(before + old + after, schema, "Kubernetes vX")
    assert text.startswith(before) and text.endswith(after)
    block = text[len(before) : -len(after)]
    assert block.splitlines()[0] == "      " + gen.HEADER.format("Kubernetes vX")
    assert yaml.safe_load(text)["items"]["properties"]["jobTemplate"] == schema
    assert gen.splice(text, schema, "Kubernetes vX") == text
