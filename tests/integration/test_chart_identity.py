"""The operator under the chart's own ServiceAccount does its whole job: RBAC suffices.

The chart is installed (RBAC, ServiceAccount; its Deployment's pod is played by kwok),
a token is made for its ServiceAccount, and the real operator runs with nothing else and
the chart's own flags: it makes the webhook's certificate and writes its CA into the
chart's ValidatingWebhookConfiguration, refuses a privileged job from a user who may not
create Jobs and a run from anyone but itself, takes the leader Lease, fires,
orchestrates Jobs, posts Events, reruns and sends an e-mail.
tests/integration/test_chart.py checks with `kubectl auth can-i` that the same identity
may do no more than that.
"""

from __future__ import annotations

import json
from pathlib import Path

from hack.ports import free_port
from tests.integration.conftest import Helm, Operator
from tests.integration.objects import (
    first_rerun_of_a_run_now,
    scheduled_job,
    scheduled_job_run,
    service,
)
from tests.integration.test_chart import install, manifest
from tests.integration.test_operator import finished_run, reasons, run_now, service_phases
from tests.integration.test_webhook import ALMANAC_EDIT, grant
from tests.kube import Kubectl, api_refusals, wait_until
from tests.smtp_server import SmtpServer


def token_kubeconfig(kube: Kubectl, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount, with a bound token."""
    admin = json.loads(kube.kubeconfig.read_text())
    token = kube.run("create", "token", account, "-n", namespace, "--duration=1h").stdout
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": admin["clusters"],
                "users": [{"name": account, "user": {"token": token.strip()}}],
                "contexts": [
                    {
                        "name": "sa",
                        "context": {"cluster": admin["clusters"][0]["name"], "user": account},
                    }
                ],
                "current-context": "sa",
            }
        )
    )
    return path


def test_the_operator_does_its_whole_job_as_the_charts_service_account(
    helm: Helm, kube: Kubectl, restricted: str, release: str, tmp_path: Path
) -> None:
    ns = restricted
    install(helm, kube, release, ns)
    # The chart went in under the restricted standard; the sample services' pods do not
    # meet it (nor need to: they are the users' workloads, not the operator).
    kube.run("label", "namespace", ns, "pod-security.kubernetes.io/enforce-")
    k = kube.in_namespace(ns)
    kubeconfig = token_kubeconfig(kube, ns, release, tmp_path / "sa.kubeconfig")
    assert k.run(
        "--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "json", check=False
    ).returncode in (0, 1)  # whoami needs no RBAC; just a sanity call
    port = free_port()
    webhook_args = loopback_webhook(kube, helm, release, ns, port)
    with SmtpServer() as smtp:
        operator = Operator(
            kubeconfig,
            ns,
            tmp_path,
            env={
                "ALMANAC_SMTP_HOST": smtp.host,
                "ALMANAC_SMTP_PORT": str(smtp.port),
                "ALMANAC_SMTP_SECURITY": "none",
                "ALMANAC_SMTP_FROM": "almanac@example.com",
                "ALMANAC_RERUN_DELAY_SECONDS": "2",
                "POD_NAMESPACE": ns,
            },
            args=(
                "--leader-elect",
                "--leader-election-namespace",
                ns,
                "--leader-election-id",
                f"{release}-leader",
                *webhook_args,
            ),
        )
        try:
            operator.start()
            # Its own certificate, in its Secret, trusted by the chart's configuration.
            secret = k.json("get", "secret", f"{release}-webhook-tls")
            assert secret["type"] == "kubernetes.io/tls"
            config = kube.json("get", "validatingwebhookconfiguration", release)
            assert {h["clientConfig"].get("caBundle") for h in config["webhooks"]} == {
                secret["data"]["ca.crt"]
            }
            # A user of almanac-edit alone may not run a privileged pod through Almanac.
            grant(k, "alice", [ALMANAC_EDIT])
            privileged = scheduled_job("root", services=[service("x")])
            pod = privileged["spec"]["services"][0]["jobTemplate"]["spec"]["template"]["spec"]
            pod["hostPID"] = True
            refused = k.run(
                "apply", "--as", "alice", "-f", "-", stdin=json.dumps(privileged), check=False
            )
            assert 'alice may not create Jobs in namespace "' in refused.stderr, refused.stderr
            # Nobody but the operator creates runs, not even a cluster admin.
            handmade = scheduled_job_run(
                "handmade", "ghost", services=privileged["spec"]["services"]
            )
            refused = k.run("create", "-f", "-", stdin=json.dumps(handmade), check=False)
            assert "only the Almanac operator creates ScheduledJobRuns" in refused.stderr
            k.apply(
                scheduled_job(
                    "as-sa",
                    services=[
                        service("first"),
                        service("second", mandatory=True, exit_code=1),
                        service("third"),
                    ],
                    notifications={"onFailure": True, "to": ["ops@example.com"]},
                )
            )
            run = finished_run(k, run_now(k, "as-sa")["metadata"]["name"])
            assert service_phases(run) == {
                "first": "Succeeded",
                "second": "Failed",
                "third": "Skipped",
            }
            assert "RunFailed" in reasons(k, "as-sa")
            smtp.wait_for(1, timeout=30)
            name = run["metadata"]["name"]
            k.run("annotate", "sjr", name, "almanac.dev/rerun=failed")
            child = finished_run(k, first_rerun_of_a_run_now(name))
            assert child["spec"]["parentRun"] == name
            wait_until("the rerun's e-mail", lambda: len(smtp.received) == 2, 30)
            # A recipient outside the operator's mail domains is refused at apply time.
            stranger = scheduled_job(
                "leaky", notifications={"onFailure": True, "to": ["x@elsewhere.org"]}
            )
            refused = k.run("apply", "-f", "-", stdin=json.dumps(stranger), check=False)
            assert 'spec.notifications.to[0]: "x@elsewhere.org"' in refused.stderr, refused.stderr
            # The operator's own requests were never refused (what follows is a refusal of
            # the user's Pod, which the log reports).
            assert api_refusals(operator.log()) == []
            # A Pod that Pod Security refuses: the run says why (the operator may read the
            # Job controller's Events).
            kube.run("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
            k.apply(scheduled_job("psa"))
            psa = run_now(k, "psa")["metadata"]["name"]
            wait_until("the refusal in the run's status", lambda: refusal(k, psa), timeout=60)
            assert "ServicePodsRefused" in reasons(k, psa)
            lease = k.json("get", "lease", f"{release}-leader")
            assert lease["spec"]["holderIdentity"]
        except AssertionError:
            print(f"--- operator log ---\n{operator.log()[-6000:]}")
            raise
        finally:
            operator.stop()


def refusal(k: Kubectl, run: str) -> str | None:
    services = (k.get("sjr", run) or {}).get("status", {}).get("services") or []
    text = str(services[0].get("message") or "") if services else ""
    return text if text.startswith("no Pod created yet: ") and "PodSecurity" in text else None


def loopback_webhook(kube: Kubectl, helm: Helm, release: str, ns: str, port: int) -> list[str]:
    """The chart's webhook flags for an operator run here, on ``port``: kwok runs no
    Pod behind the webhook's Service, so the chart's configuration is pointed at the
    operator on loopback (its certificate then also names localhost)."""
    (deployment,) = [o for o in manifest(helm, release, ns) if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = [a for a in container["args"] if a.startswith("--webhook")]
    assert "--webhook-secret" in " ".join(args), args  # the chart's default: its own certificate
    config = kube.json("get", "validatingwebhookconfiguration", release)
    for hook in config["webhooks"]:
        path = hook["clientConfig"]["service"]["path"]
        hook["clientConfig"] = {"url": f"https://localhost:{port}{path}"}
    kube.run("replace", "-f", "-", stdin=json.dumps(config))
    return [
        *(a for a in args if not a.startswith("--webhook-port")),
        f"--webhook-port={port}",
        "--webhook-dns-name=localhost",
    ]
