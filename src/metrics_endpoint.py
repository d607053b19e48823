"""What the charm tells Prometheus on ``metrics-endpoint``: the scrape job and alert rules.

Every unit serves its own metrics on the ops port (plain HTTP, ``GET /metrics``). The job's
one target ``*:PORT`` stands for every unit: Prometheus replaces ``*`` with the address each
unit publishes in its databag (its pod's DNS name) and labels the series with the unit.
Alert rule expressions carry no topology: Prometheus adds the matchers for this application.
"""

from __future__ import annotations

from typing import Any

JOB_NAME = "cluster-manager"
METRICS_PATH = "/metrics"


def scrape_jobs(port: int) -> list[dict[str, Any]]:
    """One job scraping ``/metrics`` on ``port`` of every unit."""
    return [
        {
            "job_name": JOB_NAME,
            "metrics_path": METRICS_PATH,
            "static_configs": [{"targets": [f"*:{port}"]}],
        }
    ]


def alert_rules(topology: dict[str, str]) -> dict[str, Any]:
    """Alert rules on the service's own metrics, labelled with the application's topology."""
    labels = {
        "juju_model": topology["model"],
        "juju_model_uuid": topology["model_uuid"],
        "juju_application": topology["application"],
    }

    def rule(name: str, expr: str, wait: str, severity: str, summary: str) -> dict[str, Any]:
        return {
            "alert": name,
            "expr": expr,
            "for": wait,
            "labels": {**labels, "severity": severity},
            "annotations": {"summary": summary},
        }

    group = "_".join(
        (topology["model"], topology["model_uuid"], topology["application"], "alerts")
    )
    return {
        "groups": [
            {
                "name": group,
                "rules": [
                    rule(
                        "ClusterManagerUnitDown",
                        "up < 1",
                        "5m",
                        "critical",
                        "Cluster Manager unit {{ $labels.juju_unit }} is not serving /metrics",
                    ),
                    rule(
                        "ClusterManagerStaleClusters",
                        "max(mcm_clusters_stale) > 0",
                        "15m",
                        "warning",
                        "{{ $value }} enrolled clusters stopped sending heartbeats",
                    ),
                    rule(
                        "ClusterManagerForwardingDrops",
                        "sum(increase(mcm_forward_dropped_heartbeats_total[15m])) > 0",
                        "15m",
                        "warning",
                        "Heartbeats are not reaching Prometheus by remote write",
                    ),
                ],
            }
        ]
    }
