"""The Grafana dashboards the charm ships (``src/grafana_dashboards/*.json``).

The fleet dashboard has a fixed uid, so the web UI can link a cluster straight to
``<grafana_url>/d/<uid>?var-cluster=<name>``.
"""

from __future__ import annotations

import json
from pathlib import Path

DASHBOARDS_DIR = Path(__file__).resolve().parent / "grafana_dashboards"
FLEET_DASHBOARD = "cluster-manager-fleet"
FLEET_DASHBOARD_UID = "microcloud-cluster-manager-fleet"


def load_dashboards() -> dict[str, str]:
    """Every shipped dashboard, name (file stem) -> JSON text, checked to be JSON objects."""
    dashboards = {}
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        text = path.read_text()
        if not isinstance(json.loads(text), dict):
            raise ValueError(f"{path.name} is not a Grafana dashboard")
        dashboards[path.stem] = text
    return dashboards
