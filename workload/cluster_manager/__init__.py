"""MicroCloud Cluster Manager: the workload (Management API, Cluster Connector, CLI)."""
