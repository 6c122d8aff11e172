"""A watch on one collection, each object printed with the moment it arrived (bench_fleet).

    python -m tests.benchmarks.watch_stamped KUBECONFIG API_PATH [--selector S] FIELD...

Lists API_PATH (e.g. /apis/batch/v1/namespaces/ns/jobs), then watches it from the list's
resourceVersion; prints, for every object listed, added or modified, one line
``<epoch seconds> <FIELD value> ...`` (``<none>`` for a field the object lacks; a field
is a dotted path, list indexes included: ``metadata.ownerReferences.0.name``), and
``# open <epoch>`` once the first watch is open. A watch the API server ends (its
timeout, or a consumer it finds too slow) is opened again from the last resourceVersion
seen, so no event is lost (``# reopen``); if that version is gone (410), the collection
is listed again (``# relist``: objects first shown then were seen late).

Standard library and PyYAML only, one process of its own: kubectl's `get -w` exits
when the server ends its watch, and its stamps would wait on whoever reads its output.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import ssl
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import yaml


def connection_factory(kubeconfig: Path) -> tuple[Any, dict[str, str]]:
    """A function making HTTPS connections to the kubeconfig's current cluster, and the
    headers to send (a bearer token, when the user has one)."""
    config = yaml.safe_load(kubeconfig.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    user = next(u for u in config["users"] if u["name"] == context["context"]["user"])
    cluster, user = cluster["cluster"], user["user"]
    folder = Path(tempfile.mkdtemp(prefix="watch-"))

    def path_of(entry: dict[str, Any], key: str) -> str | None:
        if entry.get(f"{key}-data"):
            target = folder / key
            target.write_bytes(base64.b64decode(entry[f"{key}-data"]))
            return str(target)
        value = entry.get(key)
        return str(value) if value else None

    tls = ssl.create_default_context(cafile=path_of(cluster, "certificate-authority"))
    cert = path_of(user, "client-certificate")
    if cert:
        tls.load_cert_chain(cert, path_of(user, "client-key"))
    headers = {"Accept": "application/json"}
    if user.get("token"):
        headers["Authorization"] = f"Bearer {user['token']}"
    server = urllib.parse.urlsplit(cluster["server"])

    def connect() -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(server.hostname, server.port or 443, context=tls)

    return connect, headers


def field(obj: Any, path: str) -> str:
    for part in path.split("."):
        if isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        elif isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            return "<none>"
    return "<none>" if obj is None else str(obj)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kubeconfig", type=Path)
    parser.add_argument("path")
    parser.add_argument("--selector", default="")
    parser.add_argument("fields", nargs="+")
    args = parser.parse_args()
    connect, headers = connection_factory(args.kubeconfig)
    out = sys.stdout

    def show(obj: Any) -> None:
        values = " ".join(field(obj, f).replace(" ", "_") for f in args.fields)
        out.write(f"{time.time():.6f} {values}\n")
        out.flush()

    def query(**params: str) -> str:
        if args.selector:
            params["labelSelector"] = args.selector
        return f"{args.path}?{urllib.parse.urlencode(params)}"

    def list_all() -> str:
        for _ in range(30):  # a 429 (a CRD's storage (re)initializing) is tried again
            conn = connect()
            conn.request("GET", query(), headers=headers)
            response = conn.getresponse()
            body = json.loads(response.read())
            conn.close()
            if response.status != 429:
                break
            time.sleep(float(response.getheader("Retry-After") or 1))
        if response.status != 200:
            raise SystemExit(f"list {args.path}: {response.status} {body}")
        for item in body.get("items", []):
            show(item)
        return str(body["metadata"]["resourceVersion"])

    version = list_all()
    opened = False
    while True:
        conn = connect()
        try:
            conn.request(
                "GET",
                query(
                    watch="1",
                    allowWatchBookmarks="true",
                    resourceVersion=version,
                    timeoutSeconds="3600",
                ),
                headers=headers,
            )
            response = conn.getresponse()
            if response.status != 200:
                out.write(f"# watch answered {response.status}\n")
                version = list_all()
                continue
            if not opened:
                out.write(f"# open {time.time():.6f}\n")
                out.flush()
                opened = True
            while line := response.readline():
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        out.write("# relist\n")
                        version = list_all()
                    break
                version = (obj.get("metadata") or {}).get("resourceVersion", version)
                if event.get("type") in ("ADDED", "MODIFIED"):
                    show(obj)
        except (OSError, http.client.HTTPException, ValueError) as error:
            out.write(f"# error {error!r}\n")
            time.sleep(0.2)
        finally:
            conn.close()
        out.write("# reopen\n")
        out.flush()


if __name__ == "__main__":
    main()
