"""The documentation as a newcomer reads it: README.md and docs/*.md.

- Every relative link resolves to a file of the repository, and every ``#anchor`` to a
  heading of the page it names (GitHub's anchor rule).
- Every section a page names in quotes after another page ("docs/api.md, "Missed
  fires"") is there: a heading, or the emphasised lead of a paragraph, that starts so.
- Every manifest the docs show (a YAML block, or a file of docs/examples/) is one the
  operator accepts: each ScheduledJob, Calendar, ClusterCalendar and Backfill is parsed
  by the models. A sketch is completed with what it leaves out (``services: [...]``, a
  fragment without ``metadata``) and nothing else. The contract's reference blocks in
  docs/api.md are schematic (``annual: [...]; monthly: [...]``), not YAML: their field
  names are checked against the CRD of their kind instead.

The commands the docs show with their output are checked where the output is:
tests/unit/test_cli_calendar.py (docs/calendars.md), test_cli_next.py (README.md,
docs/schedule.md).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from almanac.api.models import Backfill, Calendar, ClusterCalendar, ScheduledJob

REPO = Path(__file__).resolve().parent.parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^( *)(```|~~~)([\w-]*)\n(.*?)^\1\2", re.DOTALL | re.MULTILINE)


def page_id(path: Path) -> str:
    return str(path.relative_to(REPO))


def prose(text: str) -> str:
    """The text outside fenced blocks and inline code, where links are links."""
    text = FENCE.sub("", text)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation but ``-`` and
    ``_`` dropped, spaces as ``-``, and ``-1``, ``-2``... on repeats."""
    seen: dict[str, int] = {}
    found = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        heading = re.match(r"#{1,6}\s+(.*?)\s*$", line)
        if not heading:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1))
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        repeat = seen.get(slug, 0)
        seen[slug] = repeat + 1
        found.add(f"{slug}-{repeat}" if repeat else slug)
    return found


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(page.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # https:, mailto:: not ours to check offline
        path, _, fragment = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif fragment and destination.suffix == ".md" and fragment not in anchors(destination):
            broken.append(f"{target}: no heading with that anchor")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert broken_links(page) == []


SECTION_REFERENCE = re.compile(
    r"\b(?:docs/)?([a-z]+\.md),?\s+((?:\"[^\"]+\"(?:,\s*|\s+and\s+|\s+or\s+)?)+)"
)


def section_starts(path: Path) -> list[str]:
    """What a section can be named by: its heading, or a paragraph's emphasised lead."""
    starts = []
    for line in FENCE.sub("", path.read_text()).splitlines():
        line = re.sub(r"^(#{1,6}|\s*[-*]\s)\s*", "", line).replace("`", "")
        starts.append(line.lstrip("*").lstrip())
    return starts


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_section_named_in_quotes_after_a_page_is_in_that_page(page: Path) -> None:
    flat = re.sub(r"\s*\n\s*", " ", prose(page.read_text()))
    missing = []
    for reference in SECTION_REFERENCE.finditer(flat):
        named = REPO / "docs" / reference.group(1)
        if not named.exists():
            missing.append(f"{reference.group(1)}: no such page")
            continue
        starts = section_starts(named)
        for section in re.findall(r"\"([^\"]+)\"", reference.group(2)):
            if not any(s.startswith(section.replace("`", "")) for s in starts):
                missing.append(f'{reference.group(1)}, "{section}"')
    assert missing == []


# --------------------------------------------------------------------------------------
# Manifests

MODELS: dict[str, Any] = {
    "ScheduledJob": ScheduledJob,
    "Calendar": Calendar,
    "ClusterCalendar": ClusterCalendar,
    "Backfill": Backfill,
}
SERVICE = {
    "name": "main",
    "jobTemplate": {
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox"}],
                }
            }
        }
    },
}
# The contract's reference blocks: every field with its meaning, not YAML.
SCHEMATIC = {("docs/api.md", kind) for kind in ("ScheduledJob", "Calendar", "ScheduledJobRun")}
SCHEMATIC.add(("docs/api.md", "Backfill"))


def yaml_blocks() -> list[tuple[str, str]]:
    blocks = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            if match.group(3) in ("yaml", "yml"):
                line = text[: match.start()].count("\n") + 1
                body = re.sub(f"^{match.group(1)}", "", match.group(4), flags=re.MULTILINE)
                blocks.append((f"{page_id(page)}:{line}", body))
    return blocks


def completed(body: dict[str, Any]) -> dict[str, Any]:
    """A sketch made whole with what it leaves out, and nothing it says changed."""
    body.setdefault("metadata", {"name": "example"})
    if body.get("kind") == "ScheduledJob":
        spec = body.setdefault("spec", {})
        spec.setdefault("schedule", "0 0 * * *")
        if spec.get("services", ["..."]) == ["..."]:
            spec["services"] = [SERVICE]
    return body


def kind_of(body: dict[str, Any]) -> str | None:
    """A fragment of a job's spec (``spec: {notifications: ...}``) is a ScheduledJob's."""
    if "kind" in body:
        return str(body["kind"])
    return "ScheduledJob" if set(body) == {"spec"} else None


BLOCKS = yaml_blocks()


@pytest.mark.parametrize(("where", "text"), BLOCKS, ids=[where for where, _ in BLOCKS])
def test_every_manifest_the_docs_show_is_accepted_by_the_models(where: str, text: str) -> None:
    kinds = re.findall(r"^\s*kind:\s*(\w+)", text, flags=re.MULTILINE)
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        page = where.split(":")[0]
        assert kinds and all((page, kind) in SCHEMATIC for kind in kinds), "not YAML"
        return
    for body in documents:
        if not isinstance(body, dict):
            continue
        kind = kind_of(body)
        if kind in MODELS:
            body["kind"] = kind
            MODELS[kind].parse(completed(body))


def test_the_schematic_blocks_are_the_contracts_and_name_only_fields_of_their_crd() -> None:
    """The reference blocks of docs/api.md: each key (before a colon, or a bare name in
    a flow list) is a field somewhere in the CRD of the block's kind."""
    fields: dict[str, set[str]] = {}
    for path in (REPO / "crds").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        names: set[str] = set()
        collect_properties(crd["spec"]["versions"][0]["schema"], names)
        fields[crd["spec"]["names"]["kind"]] = names
    standard = {"apiVersion", "kind", "metadata", "name", "namespace", "spec", "status"}
    standard |= {"labels", "annotations", "ownerReferences", "finalizers"}  # metadata's
    found = set()
    for where, text in BLOCKS:
        try:
            list(yaml.safe_load_all(text))
            continue
        except yaml.YAMLError:
            pass
        [kind] = set(re.findall(r"^\s*kind:\s*(\w+)", text, flags=re.MULTILINE))
        found.add((where.split(":")[0], kind))
        text = re.sub(r"(ical: \|\n)((?:\s{4,}.*\n)+)", r"\1", text)  # the iCalendar text
        keys: set[str] = set()
        for line in text.splitlines():
            line = line.split("#")[0]
            keys.update(re.findall(r"(?:^|[\s{,\[-])([A-Za-z_]\w*)\s*:(?=\s|$)", line))
            keys.update(re.findall(r"[{,]\s*([A-Za-z_]\w*)\s*[,}]", line))
        assert sorted(keys - standard - fields[kind]) == [], where
    assert found == SCHEMATIC


def collect_properties(schema: Any, names: set[str]) -> None:
    if isinstance(schema, dict):
        names.update(schema.get("properties", {}))
        for value in schema.values():
            collect_properties(value, names)
    elif isinstance(schema, list):
        for value in schema:
            collect_properties(value, names)


EXAMPLES = sorted((REPO / "docs" / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_manifest_is_accepted_by_the_models(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert documents
    for body in documents:
        assert body["apiVersion"] == "almanac.dev/v1alpha1"
        MODELS[body["kind"]].parse(body)


def test_schedule_md_says_a_day_or_month_may_have_one_digit_as_the_crd_and_models_do() -> None:
    """The CRD's own example of an annual day is "1.5", and the models take it (kept as
    "01.05"); docs/schedule.md "Exclusions" said days and months take two digits."""
    crd = (REPO / "crds" / "almanac.dev_scheduledjobs.yaml").read_text()
    assert '"25.12" or "1.5"' in crd
    body = {
        "metadata": {"name": "j"},
        "spec": {"schedule": "0 0 * * *", "exclusions": {"annual": ["1.5"]}, "services": [SERVICE]},
    }
    ScheduledJob.parse(body)
    exclusions = (REPO / "docs" / "schedule.md").read_text().split("## Exclusions", 1)[1]
    exclusions = exclusions.split("\n## ", 1)[0]
    assert "take two digits" not in exclusions
    assert '"1.5"' in exclusions


def test_calendars_md_gives_the_webhooks_latest_figure_at_10000_jobs() -> None:
    """docs/calendars.md says how many of 10,000 referring jobs the webhook checks in the
    chart's 5 s: the README's "Measured" figure (the latest, docs/performance.md), not an
    older one (it said about 1,000, from before the webhook checked a page at a time)."""
    readme = (REPO / "README.md").read_text()
    [row] = [line for line in readme.splitlines() if line.startswith("| 10,000 | 0.21")]
    said = (REPO / "docs" / "calendars.md").read_text().split("## What will this edit move?")[1]
    claim = re.search(r"\(([^()]*of 10,000[^()]*)\)", re.sub(r"\s+", " ", said))
    assert claim is not None
    numbers = re.findall(r"\d{1,3}(?:,\d{3})+", claim.group(1).replace("10,000", ""))
    assert numbers and all(number in row for number in numbers), (claim.group(1), row)


@pytest.mark.parametrize("verb", ["next", "calendar", "calendar-diff"])
def test_the_contracts_synopsis_of_each_offline_command_names_every_option(verb: str) -> None:
    """docs/api.md "Command line" gives each offline command's synopsis: every option
    ``almanac VERB --help`` lists is in it, in one of its spellings (a newcomer reading
    the contract did not learn of --default-timezone)."""
    import argparse

    from almanac.cli.main import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = commands.choices[verb]
    api = (REPO / "docs" / "api.md").read_text()
    [synopsis] = re.findall(rf"^```\n(almanac {verb} -f .*)\n```$", api, flags=re.MULTILINE)
    missing = [
        action.option_strings[-1]
        for action in parser._actions
        if action.option_strings and action.dest != "help"
        if not any(re.search(rf"{o}\b", synopsis) for o in action.option_strings)
    ]
    assert missing == []


def test_the_backfill_status_in_the_contract_is_one_its_job_could_have(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/api.md "Backfill": the status shown is of a Backfill of the contract's own
    nightly-settlement job (its Calendar and window aside) over November 2026, order Oldest: the
    runs created are the first ``created`` instants, the active ones among them, and
    ``nextInstant`` the one after (it named runs of 24 and 25 November, created after
    the instant it called next, 17 November)."""
    from datetime import datetime, timedelta

    from almanac.cli.main import main

    api = (REPO / "docs" / "api.md").read_text()
    job = yaml.safe_load(api.split("## ScheduledJob\n\n```yaml\n")[1].split("\nstatus:\n")[0])
    for sketch in ("calendarRefs", "startTime", "endTime"):  # a Calendar of every field,
        job["spec"].pop(sketch)  # a window of 2027: the example is about its schedule
    job["spec"]["services"] = [SERVICE]
    backfill = api.split("## Backfill\n", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    spec = yaml.safe_load(backfill.split("\nstatus:\n")[0])["spec"]
    status = {
        key: yaml.safe_load(value.split("#")[0])
        for key, value in re.findall(r"^  (\w+): (.*)$", backfill.split("\nstatus:\n")[1], re.M)
    }
    assert spec["order"] == "Oldest"
    manifest = tmp_path / "job.yaml"
    manifest.write_text(yaml.safe_dump(job))
    after = (datetime.fromisoformat(spec["from"]) - timedelta(seconds=1)).isoformat()
    assert main(["next", "-f", str(manifest), "--after", after, "-n", "100"]) == 0
    end = datetime.fromisoformat(spec["to"])
    instants = [t for t in capsys.readouterr().out.split() if datetime.fromisoformat(t) < end]

    assert len(instants) == status["total"]
    assert status["nextInstant"] == instants[status["created"]]
    created = {
        f"nightly-settlement-{int(datetime.fromisoformat(t).timestamp()) // 60}"
        for t in instants[: status["created"]]
    }
    assert set(status["active"]) <= created
