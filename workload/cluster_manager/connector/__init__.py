"""The Cluster Connector: the HTTPS API MicroCloud clusters call."""
