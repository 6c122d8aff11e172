"""The operator under the chart's own ServiceAccount does its whole job: RBAC suffices.

The chart is installed (RBAC, ServiceAccount; its Deployment's pod is played by kwok),
a token is made for its ServiceAccount, and the real operator runs with nothing else:
it takes the leader Lease, fires, orchestrates Jobs, posts Events, reruns and sends an
e-mail. tests/integration/test_chart.py checks with `kubectl auth can-i` that the same
identity may do no more than that.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.conftest import Helm, Operator
from tests.integration.objects import scheduled_job, service
from tests.integration.test_chart import install
from tests.integration.test_operator import finished_run, reasons, run_now, service_phases
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
            },
            args=(
                "--leader-elect",
                "--leader-election-namespace",
                ns,
                "--leader-election-id",
                f"{release}-leader",
            ),
        )
        try:
            operator.start()
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
            child = finished_run(k, name.rsplit("-m", 1)[0] + "-r1")
            assert child["spec"]["parentRun"] == name
            wait_until("the rerun's e-mail", lambda: len(smtp.received) == 2, 30)
            lease = k.json("get", "lease", f"{release}-leader")
            assert lease["spec"]["holderIdentity"]
            assert api_refusals(operator.log()) == []
        except AssertionError:
            print(f"--- operator log ---\n{operator.log()[-6000:]}")
            raise
        finally:
            operator.stop()
