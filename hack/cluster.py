#!/usr/bin/env python3
"""A real, local Kubernetes control plane on 127.0.0.1, for tests and the dev loop.

``up`` starts etcd, kube-apiserver (RBAC, service-account keys, a generated CA and an
admin client certificate), kube-controller-manager (Job controller, garbage collector),
kube-scheduler and kwok with one fake Node, each as a background process of its own, and
waits until ``/readyz`` answers ok and the fake Node is Ready. ``down`` stops exactly the
processes ``up`` recorded (checked against /proc before a signal is sent) and removes the
state. Binaries come from ``hack/build-tools.sh`` (built once per machine, cached).

Everything lives in the state folder (default ``.cluster/`` at the repository root):
``kubeconfig`` (admin), ``logs/<component>.log``, ``pki/`` (``pki/webhook/`` serves a local
operator's webhook), ``etcd/``, ``pids/``.

Usage: ``hack/cluster.py up|down|status [--state DIR]``. Exit 0 on success; on a failure
it prints the component whose log to read.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ports import free_port  # hack/ports.py: this script's folder is on sys.path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_STATE = REPO / ".cluster"
NODE_NAME = "kwok-node-0"
SERVICE_CIDR = "10.0.0.0/24"
# Cold starts on 2 busy cores: etcd and the apiserver's post-start hooks take a while.
READY_TIMEOUT_S = 180


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- binaries -------------------------------------------------------------------------


def find_binaries() -> dict[str, str]:
    """Runs hack/build-tools.sh (which builds only what is missing) and reads its answer."""
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "build-tools.sh")],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


# --- certificates ---------------------------------------------------------------------


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _cert(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: tuple[x509.Name, rsa.RSAPrivateKey] | None,
    *,
    ca: bool = False,
    server_names: list[str] | None = None,
    client: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        usages = [x509.ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        if server_names:
            usages.append(x509.ExtendedKeyUsageOID.SERVER_AUTH)
            sans: list[x509.GeneralName] = []
            for name in server_names:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(name)))
                except ValueError:
                    sans.append(x509.DNSName(name))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(common: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def make_pki(pki: Path) -> None:
    """A CA, the apiserver's serving certificate, client certificates, SA keys, and a
    serving certificate for a local operator's webhook (webhook/tls.crt, tls.key)."""
    pki.mkdir(parents=True, exist_ok=True)
    ca_key, ca_name = _key(), _name("almanac-local-ca")
    ca = _cert(ca_name, ca_key, None, ca=True)
    _write_key(pki / "ca.key", ca_key)
    _write_cert(pki / "ca.crt", ca)

    serving = [
        "127.0.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.0.0.1",
    ]
    key = _key()
    _write_key(pki / "apiserver.key", key)
    _write_cert(
        pki / "apiserver.crt",
        _cert(_name("kube-apiserver"), key, (ca_name, ca_key), server_names=serving),
    )

    # Each client's identity is its certificate's subject; RBAC's bootstrap roles know
    # system:kube-controller-manager and system:kube-scheduler by these names.
    for file, common, org in [
        ("admin", "almanac-admin", "system:masters"),
        ("controller-manager", "system:kube-controller-manager", None),
        ("scheduler", "system:kube-scheduler", None),
        ("kwok", "kwok", "system:masters"),
    ]:
        key = _key()
        _write_key(pki / f"{file}.key", key)
        _write_cert(
            pki / f"{file}.crt", _cert(_name(common, org), key, (ca_name, ca_key), client=True)
        )

    # The validating webhook of an operator running on this machine (`make dev`, tests):
    # the API server reaches it on loopback and trusts it through the cluster's CA.
    webhook = pki / "webhook"
    webhook.mkdir(exist_ok=True)
    key = _key()
    _write_key(webhook / "tls.key", key)
    _write_cert(
        webhook / "tls.crt",
        _cert(_name("almanac-webhook"), key, (ca_name, ca_key), server_names=serving[:2]),
    )

    sa = _key()
    _write_key(pki / "sa.key", sa)
    (pki / "sa.pub").write_bytes(
        sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def write_kubeconfig(path: Path, server: str, pki: Path, user: str) -> None:
    """A kubeconfig (JSON is valid YAML) that refers to the certificate files by path."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "almanac-local",
                "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate": str(pki / f"{user}.crt"),
                    "client-key": str(pki / f"{user}.key"),
                },
            }
        ],
        "contexts": [
            {"name": "almanac-local", "context": {"cluster": "almanac-local", "user": user}}
        ],
        "current-context": "almanac-local",
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)


# --- processes ------------------------------------------------------------------------


def start(state: Path, name: str, argv: list[str]) -> None:
    """Starts one component in its own session, logging to logs/<name>.log."""
    log = (state / "logs" / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=state,
    )
    (state / "pids" / f"{name}.pid").write_text(f"{proc.pid} {argv[0]}\n")
    say(f"    started {name} (pid {proc.pid})")


def ours(pid: int, binary: str) -> bool:
    """True when pid is still the process we started (pids are reused by the kernel)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].decode(errors="replace") == binary


def recorded(state: Path) -> list[tuple[str, int, str]]:
    pids = state / "pids"
    result = []
    for file in sorted(pids.glob("*.pid")) if pids.is_dir() else []:
        pid, binary = file.read_text().split(maxsplit=1)
        result.append((file.stem, int(pid), binary.strip()))
    return result


def wait_for(what: str, check: Callable[[], bool], timeout: float, state: Path, log: str) -> None:
    """Polls check() until it holds, printing progress; on timeout, points at the log."""
    start_t = time.monotonic()
    last_report = start_t
    while not check():
        now = time.monotonic()
        dead = [name for name, pid, binary in recorded(state) if not ours(pid, binary)]
        if dead:
            log_file = state / "logs" / f"{dead[0]}.log"
            tail = log_file.read_text(errors="replace").splitlines()[-5:]
            say(f"error: {dead[0]} exited while waiting for {what}; its log ends:")
            say("\n".join(f"    {line}" for line in tail))
            say(f"       the whole log: {log_file}; stop the rest with: hack/cluster.py down")
            sys.exit(1)
        if now - start_t > timeout:
            say(f"error: {what} not reached in {timeout:.0f}s; read {state / 'logs' / log}")
            say("       (then: hack/cluster.py down, to stop what was started)")
            sys.exit(1)
        if now - last_report >= 10:
            say(f"    ... waiting for {what} ({now - start_t:.0f}s)")
            last_report = now
        time.sleep(0.5)
    say(f"    {what} ({time.monotonic() - start_t:.1f}s)")


def kubectl(state: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(state / "kubeconfig"), "--request-timeout=5s", *args],
        input=stdin,
        capture_output=True,
        text=True,
    )


def healthy(state: Path) -> bool:
    """The apiserver answers /readyz ok and the fake node is Ready."""
    if not (state / "kubeconfig").exists():
        return False
    if kubectl(state, "get", "--raw", "/readyz").stdout.strip() != "ok":
        return False
    ready = kubectl(
        state,
        "get",
        "node",
        NODE_NAME,
        "-o",
        "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
    )
    return ready.stdout.strip() == "True"


FAKE_NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "name": NODE_NAME,
        "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        "labels": {
            "kubernetes.io/hostname": NODE_NAME,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kwok",
        },
    },
    "status": {
        "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "1000"},
        "capacity": {"cpu": "32", "memory": "256Gi", "pods": "1000"},
    },
}


def up(state: Path) -> None:
    if healthy(state):
        say(f"The control plane in {state} is already up: reusing it.")
        return
    if recorded(state):
        say(f"A previous control plane in {state} is not healthy: stopping it first.")
        down(state)
    t0 = time.monotonic()
    say("==> binaries (built once per machine; see hack/build-tools.sh)")
    bins = find_binaries()
    for sub in ("logs", "pids", "etcd"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    pki = state / "pki"
    say("==> certificates")
    make_pki(pki)

    etcd_port, etcd_peer, api_port = free_port(), free_port(), free_port()
    kcm_port, sched_port, kwok_port = free_port(), free_port(), free_port()
    server = f"https://127.0.0.1:{api_port}"
    for user in ("admin", "controller-manager", "scheduler", "kwok"):
        write_kubeconfig(state / f"{user}.kubeconfig", server, pki, user)
    shutil.copy(state / "admin.kubeconfig", state / "kubeconfig")

    say("==> etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok")
    start(
        state,
        "etcd",
        [
            bins["etcd"],
            "--data-dir",
            str(state / "etcd"),
            "--name",
            "almanac",
            "--listen-client-urls",
            f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{etcd_peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{etcd_peer}",
            "--initial-cluster",
            f"almanac=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync",  # test data: durability buys nothing, fsync costs seconds
            "--log-level",
            "warn",
        ],
    )
    start(
        state,
        "kube-apiserver",
        [
            bins["kube-apiserver"],
            "--etcd-servers",
            f"http://127.0.0.1:{etcd_port}",
            "--bind-address",
            "127.0.0.1",
            "--advertise-address",
            "127.0.0.1",
            "--secure-port",
            str(api_port),
            "--tls-cert-file",
            str(pki / "apiserver.crt"),
            "--tls-private-key-file",
            str(pki / "apiserver.key"),
            "--client-ca-file",
            str(pki / "ca.crt"),
            "--authorization-mode",
            "Node,RBAC",
            "--service-account-issuer",
            "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file",
            str(pki / "sa.pub"),
            "--service-account-signing-key-file",
            str(pki / "sa.key"),
            "--service-cluster-ip-range",
            SERVICE_CIDR,
            "--allow-privileged=true",
            # 1.37 refuses a loopback advertise address for the `kubernetes` Service's
            # endpoints; nothing here reaches the apiserver through that Service.
            "--endpoint-reconciler-type",
            "none",
            "--cert-dir",
            str(pki),
            "--profiling=false",
        ],
    )
    wait_for(
        "etcd and kube-apiserver ready",
        lambda: kubectl(state, "get", "--raw", "/readyz").stdout.strip() == "ok",
        READY_TIMEOUT_S,
        state,
        "kube-apiserver.log",
    )

    auth = ["--authentication-kubeconfig", "--authorization-kubeconfig", "--kubeconfig"]
    start(
        state,
        "kube-controller-manager",
        [
            bins["kube-controller-manager"],
            *[f"{flag}={state / 'controller-manager.kubeconfig'}" for flag in auth],
            "--leader-elect=false",
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            str(kcm_port),
            "--root-ca-file",
            str(pki / "ca.crt"),
            "--service-account-private-key-file",
            str(pki / "sa.key"),
            "--use-service-account-credentials=true",
            "--service-cluster-ip-range",
            SERVICE_CIDR,
            "--profiling=false",
        ],
    )
    start(
        state,
        "kube-scheduler",
        [
            bins["kube-scheduler"],
            *[f"{flag}={state / 'scheduler.kubeconfig'}" for flag in auth],
            "--leader-elect=false",
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            str(sched_port),
            "--profiling=false",
        ],
    )
    stages = Path(bins["kwok-stages"])
    configs = [
        *sorted(str(p) for p in stages.glob("*.yaml")),
        str(REPO / "hack" / "kwok" / "job-pods.yaml"),
    ]
    start(
        state,
        "kwok",
        [
            bins["kwok"],
            "--kubeconfig",
            str(state / "kwok.kubeconfig"),
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-ip",
            "10.244.0.1",
            "--cidr",
            "10.244.0.0/16",
            "--server-address",
            f"127.0.0.1:{kwok_port}",
            *[f"--config={c}" for c in configs],
        ],
    )
    result = kubectl(state, "apply", "-f", "-", stdin=json.dumps(FAKE_NODE))
    if result.returncode != 0:
        say(f"error: could not create the fake node: {result.stderr.strip()}")
        sys.exit(1)
    wait_for(f"node {NODE_NAME} Ready", lambda: healthy(state), READY_TIMEOUT_S, state, "kwok.log")
    # Pods need the namespace's default ServiceAccount, made by the controller-manager.
    wait_for(
        "default ServiceAccount",
        lambda: kubectl(state, "get", "serviceaccount", "default").returncode == 0,
        READY_TIMEOUT_S,
        state,
        "kube-controller-manager.log",
    )
    version = kubectl(state, "version", "-o", "json")
    server_version = json.loads(version.stdout or "{}").get("serverVersion", {})
    say(
        f"Control plane {server_version.get('gitVersion', '?')} up in "
        f"{time.monotonic() - t0:.0f}s. Use it with:\n"
        f"    export KUBECONFIG={state / 'kubeconfig'}\n    kubectl get nodes"
    )


def down(state: Path) -> None:
    """Stops the recorded processes (only if they are still ours) and removes the state."""
    procs = [(n, p, b) for n, p, b in recorded(state) if ours(p, b)]
    # Stop in reverse order of dependency: clients first, etcd last.
    order = ["kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"]
    procs.sort(key=lambda item: order.index(item[0]) if item[0] in order else -1)
    for name, pid, binary in procs:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while ours(pid, binary) and time.monotonic() < deadline:
            # Reap it if it is our child (when the pytest fixture started it).
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)
        if ours(pid, binary):
            os.kill(pid, signal.SIGKILL)
        say(f"    stopped {name} (pid {pid})")
    if state.exists():
        shutil.rmtree(state)
    say(f"Control plane in {state} stopped and removed.")


def status(state: Path) -> int:
    procs = recorded(state)
    if not procs:
        say(f"No control plane recorded in {state}. Start one with: make cluster-up")
        return 1
    print(f"{'COMPONENT':<26}{'PID':>8}  STATE")
    for name, pid, binary in procs:
        print(f"{name:<26}{pid:>8}  {'running' if ours(pid, binary) else 'gone'}")
    ok = healthy(state)
    print(f"\napiserver /readyz and node {NODE_NAME}: {'ok' if ok else 'NOT ready'}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--state",
        type=Path,
        default=DEFAULT_STATE,
        help="state folder (default: .cluster/ in the repository)",
    )
    args = parser.parse_args()
    state = args.state.resolve()
    if args.command == "up":
        up(state)
    elif args.command == "down":
        down(state)
    else:
        return status(state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
