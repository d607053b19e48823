#!/usr/bin/env python3
"""Charm for the MicroCloud Cluster Manager: wiring and status.

One idempotent reconcile brings the workload container, the application secrets and
Traefik's routes in line with config and integrations; collect-status alone sets status.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath

import ops
from charmlibs.interfaces.certificate_transfer import CertificateTransferRequires
from charmlibs.interfaces.tls_certificates import (
    CertificateRequestAttributes,
    Mode,
    TLSCertificatesRequiresV4,
)
from charms.microcloud_cluster_manager_k8s.v0 import cos_interfaces as cos
from charms.microcloud_cluster_manager_k8s.v0.traefik_route import TraefikRouteRequirer
from dpcharmlibs.interfaces import (
    RequirerCommonModel,
    ResourceProviderModel,
    ResourceRequirerEventHandler,
)

import dashboards
import log_forwarding
import metrics_endpoint
import pebble_layer
import traefik_config
import workload_config as wc
from actions import JOIN_COMMAND, ClusterParams, EnrollClusterParams, workload_error
from config import CharmConfig, ConfigError
from shared_secrets import ManagementTls, SecretStore, SharedSecrets

logger = logging.getLogger(__name__)

CONTAINER = "cluster-manager"
PEER = "cluster-manager-peers"
DATABASE = "database"
CERTIFICATES = "certificates"
SEND_CA_CERT = "send-ca-cert"
TRAEFIK_ROUTE = "traefik-route"
SEND_REMOTE_WRITE = "send-remote-write"
METRICS_ENDPOINT = "metrics-endpoint"
GRAFANA_DASHBOARD = "grafana-dashboard"
GRAFANA_METADATA = "grafana-metadata"
LOGGING = "logging"
REQUIRED_INTEGRATIONS = (DATABASE, CERTIFICATES, TRAEFIK_ROUTE)
DATABASE_NAME = "cluster_manager"
WORKLOAD_USER = "_daemon_"
ACTION_TIMEOUT = 120.0


class ClusterManagerCharm(ops.CharmBase):
    """Runs the Cluster Manager behind Traefik, with PostgreSQL and TLS from integrations."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.container = self.unit.get_container(CONTAINER)
        self.config_error: str | None = None
        try:
            self.charm_config = self.load_config(CharmConfig)
        except ConfigError as error:
            self.config_error = str(error)
            self.charm_config = CharmConfig()
        self.secrets = SecretStore(self.model, PEER)
        self.database = ResourceRequirerEventHandler(
            self, DATABASE, [RequirerCommonModel(resource=DATABASE_NAME)], ResourceProviderModel
        )
        self.certificates = TLSCertificatesRequiresV4(
            self,
            CERTIFICATES,
            certificate_requests=self._certificate_requests(),
            mode=Mode.APP,
            refresh_events=[self.on.config_changed],
        )
        self.trusted_cas = CertificateTransferRequires(self, SEND_CA_CERT)
        self.traefik_route = TraefikRouteRequirer(self, TRAEFIK_ROUTE)

        for event in (
            self.on[CONTAINER].pebble_ready,
            self.on[CONTAINER].pebble_check_failed,
            self.on[CONTAINER].pebble_check_recovered,
            self.on.config_changed,
            self.on.upgrade_charm,
            self.on.leader_elected,
            self.on.secret_changed,
            self.on[PEER].relation_created,
            self.on[PEER].relation_changed,
            self.on[PEER].relation_departed,
            self.on[DATABASE].relation_changed,
            self.database.on.resource_created,
            self.database.on.endpoints_changed,
            self.database.on.authentication_updated,
            self.on[DATABASE].relation_broken,
            self.on[CERTIFICATES].relation_changed,
            self.certificates.on.certificate_available,
            self.on[CERTIFICATES].relation_broken,
            self.on[SEND_CA_CERT].relation_changed,
            self.trusted_cas.on.certificate_set_updated,
            self.trusted_cas.on.certificates_removed,
            self.on[TRAEFIK_ROUTE].relation_joined,
            self.traefik_route.on.ready,
            self.on[TRAEFIK_ROUTE].relation_broken,
            self.on[SEND_REMOTE_WRITE].relation_changed,
            self.on[SEND_REMOTE_WRITE].relation_departed,
            self.on[SEND_REMOTE_WRITE].relation_broken,
            self.on[METRICS_ENDPOINT].relation_joined,
            self.on[METRICS_ENDPOINT].relation_changed,
            self.on[GRAFANA_DASHBOARD].relation_joined,
            self.on[GRAFANA_DASHBOARD].relation_changed,
            self.on[GRAFANA_DASHBOARD].relation_broken,
            self.on[GRAFANA_METADATA].relation_changed,
            self.on[GRAFANA_METADATA].relation_broken,
            self.on[LOGGING].relation_changed,
            self.on[LOGGING].relation_departed,
            self.on[LOGGING].relation_broken,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(self.on.secret_remove, self._on_secret_remove)
        framework.observe(self.on.collect_unit_status, self._on_collect_unit_status)
        framework.observe(self.on.enroll_cluster_action, self._on_enroll_cluster)
        framework.observe(self.on.list_clusters_action, self._on_list_clusters)
        framework.observe(self.on.list_join_tokens_action, self._on_list_join_tokens)
        framework.observe(self.on.revoke_join_token_action, self._on_revoke_join_token)
        framework.observe(self.on.remove_cluster_action, self._on_remove_cluster)

    # What the charm asks of others.

    def _certificate_requests(self) -> list[CertificateRequestAttributes]:
        domain = self.charm_config.management_api_domain
        if self.config_error or not domain:
            return []
        return [CertificateRequestAttributes(common_name=domain, sans_dns=[domain])]

    def _connector_names(self) -> list[str]:
        domain = self.charm_config.cluster_connector_domain
        return [domain] if domain and not self.config_error else []

    # What others handed over.

    def _database_credentials(self) -> wc.DatabaseCredentials | None:
        for relation in self.database.relations:
            if relation.app is None:
                continue
            try:
                contract = self.database.interface.build_model(relation.id, component=relation.app)
            except (ops.ModelError, ValueError):
                logger.warning("database relation %d holds unreadable data", relation.id)
                continue
            for response in contract.requests:
                if response.endpoints and response.username and response.password:
                    return wc.DatabaseCredentials(
                        endpoints=response.endpoints,
                        username=response.username,
                        password=response.password,
                        database=response.resource or DATABASE_NAME,
                    )
        return None

    def _assigned_management_tls(self) -> ManagementTls | None:
        """Leader only: the certificate the certificates integration issued, if any."""
        requests = self._certificate_requests()
        if not requests or not self.model.get_relation(CERTIFICATES):
            return None
        provider_certificate, private_key = self.certificates.get_assigned_certificate(requests[0])
        if provider_certificate is None or private_key is None:
            return None
        pems = [str(provider_certificate.certificate)]
        for certificate in provider_certificate.chain:
            if str(certificate) not in pems:
                pems.append(str(certificate))
        return ManagementTls(chain="\n".join(pems) + "\n", private_key=str(private_key))

    def _unit_hosts(self) -> list[str]:
        units = {self.unit}
        peer = self.model.get_relation(PEER)
        if peer is not None:
            units |= set(peer.units)
        return [
            traefik_config.unit_host(unit.name, self.app.name, self.model.name) for unit in units
        ]

    def _observability(self) -> wc.Observability:
        """Remote-write URLs and the Grafana link, from the COS integrations present."""
        urls = {
            url
            for relation in self.model.relations[SEND_REMOTE_WRITE]
            for url in cos.remote_write_urls(relation)
        }
        grafana_url = ""
        for relation in self.model.relations[GRAFANA_METADATA]:
            metadata = cos.grafana_metadata(relation)
            if metadata is not None:
                grafana_url = metadata.url
        # The link needs the dashboard, which Grafana has only from grafana-dashboard.
        dashboard_uid = (
            dashboards.FLEET_DASHBOARD_UID
            if grafana_url and self.model.relations[GRAFANA_DASHBOARD]
            else ""
        )
        return wc.Observability(tuple(sorted(urls)), grafana_url, dashboard_uid)

    # Reconcile.

    def _reconcile(self, _: ops.EventBase) -> None:
        if self.unit.is_leader():
            self._reconcile_leader()
        self._publish_telemetry()
        if self.container.can_connect():
            self._forward_logs()
        inputs = self._workload_inputs()
        if isinstance(inputs, ops.StatusBase):
            self._stop_workload()
        else:
            self._configure_workload(*inputs)

    def _reconcile_leader(self) -> None:
        if self.model.get_relation(PEER) is None:
            return
        self.secrets.ensure_shared(self._connector_names())
        tls = self._assigned_management_tls()
        if tls is not None:
            self.secrets.publish_management_tls(tls)
        config = self.charm_config
        if (
            self.traefik_route.relation is not None
            and not self.config_error
            and config.management_api_domain
            and config.cluster_connector_domain
        ):
            self.traefik_route.submit_to_traefik(
                traefik_config.build_config(
                    name=f"{self.model.name}-{self.app.name}",
                    management_domain=config.management_api_domain,
                    management_port=pebble_layer.MANAGEMENT_PORT,
                    connector_domain=config.cluster_connector_domain,
                    connector_port=pebble_layer.CONNECTOR_PORT,
                    hosts=self._unit_hosts(),
                    health_check=config.traefik_health_check,
                )
            )

    def _publish_telemetry(self) -> None:
        """Scrape targets (every unit) and, from the leader, scrape jobs and dashboards."""
        address = traefik_config.unit_host(self.unit.name, self.app.name, self.model.name)
        for relation in self.model.relations[METRICS_ENDPOINT]:
            cos.publish_scrape_unit(relation, self.unit, address)
        if not self.unit.is_leader():
            return
        topology = cos.topology(self)
        for relation in self.model.relations[METRICS_ENDPOINT]:
            cos.publish_scrape_jobs(
                relation,
                self.app,
                metrics_endpoint.scrape_jobs(pebble_layer.OPS_PORT),
                topology,
                metrics_endpoint.alert_rules(topology),
            )
        if self.model.relations[GRAFANA_DASHBOARD]:
            shipped = dashboards.load_dashboards()
            for relation in self.model.relations[GRAFANA_DASHBOARD]:
                cos.publish_dashboards(relation, self.app, self.meta.name, shipped)

    def _forward_logs(self) -> None:
        """Point Pebble's log forwarding at every Loki push URL (none: forwarding off)."""
        urls = sorted(
            {
                url
                for relation in self.model.relations[LOGGING]
                for url in cos.loki_push_urls(relation)
            }
        )
        planned = self.container.get_plan().log_targets
        topology = cos.topology(self)
        labels = {f"juju_{key}": value for key, value in topology.items() if key != "charm_name"}
        labels["juju_charm"] = topology["charm_name"]
        layer = log_forwarding.build_layer(urls, planned, labels, pebble_layer.SERVICE)
        if log_forwarding.needs_update(layer, planned):
            self.container.add_layer(log_forwarding.LAYER, layer, combine=True)
            logger.info("log forwarding now goes to %d Loki endpoints", len(urls))

    def _workload_inputs(
        self,
    ) -> tuple[wc.DatabaseCredentials, SharedSecrets, ManagementTls] | ops.StatusBase:
        """Everything the workload needs, or the status that says what is missing."""
        if self.config_error:
            return ops.BlockedStatus(f"invalid config: {self.config_error}")
        missing_options = self.charm_config.missing_options()
        if missing_options:
            return ops.BlockedStatus(f"missing config: {', '.join(missing_options)}")
        missing = [name for name in (DATABASE, CERTIFICATES) if not self.model.relations[name]]
        if missing:
            return ops.BlockedStatus(f"missing integrations: {', '.join(missing)}")
        if not self.container.can_connect():
            return ops.WaitingStatus("waiting for Pebble in the workload container")
        database = self._database_credentials()
        if database is None:
            return ops.WaitingStatus("waiting for database credentials")
        shared = self.secrets.shared()
        if shared is None or shared.connector is None:
            return ops.WaitingStatus("waiting for the leader to share the application secrets")
        tls = self.secrets.management_tls()
        domain = self.charm_config.management_api_domain
        if tls is None or domain not in tls.names:
            return ops.WaitingStatus(f"waiting for a certificate for {domain}")
        return database, shared, tls

    def _files(
        self, database: wc.DatabaseCredentials, shared: SharedSecrets, tls: ManagementTls
    ) -> dict[PurePosixPath, tuple[str, int]]:
        assert shared.connector is not None
        trusted_cas = sorted(self.trusted_cas.get_all_certificates())
        addresses = wc.connector_addresses(
            self.charm_config.cluster_connector_domain,
            routed_by_traefik=self.traefik_route.relation is not None,
            port=pebble_layer.CONNECTOR_PORT,
        )
        settings = wc.settings(
            self.charm_config, database, addresses, bool(trusted_cas), self._observability()
        )
        files = {
            wc.CONFIG_FILE: (wc.render_toml(settings), 0o600),
            wc.MANAGEMENT_CERT_FILE: (tls.chain, 0o644),
            wc.MANAGEMENT_KEY_FILE: (tls.private_key, 0o600),
            wc.CONNECTOR_CERT_FILE: (shared.connector.certificate, 0o644),
            wc.CONNECTOR_KEY_FILE: (shared.connector.private_key, 0o600),
            wc.SESSION_KEY_FILE: (shared.session_key, 0o600),
        }
        if trusted_cas:
            files[wc.TRUSTED_CA_FILE] = (
                "\n".join(pem.strip() for pem in trusted_cas) + "\n",
                0o644,
            )
        return files

    def _push_changed(self, files: dict[PurePosixPath, tuple[str, int]]) -> bool:
        """Write the files whose content differs; return whether any did."""
        changed = False
        for path, (content, permissions) in files.items():
            try:
                if self.container.pull(path).read() == content:
                    continue
            except ops.pebble.PathError:
                pass
            self.container.push(
                path,
                content,
                make_dirs=True,
                permissions=permissions,
                user=WORKLOAD_USER,
                group=WORKLOAD_USER,
            )
            changed = True
        return changed

    def _configure_workload(
        self, database: wc.DatabaseCredentials, shared: SharedSecrets, tls: ManagementTls
    ) -> None:
        files_changed = self._push_changed(self._files(database, shared, tls))
        layer = pebble_layer.build_layer(wc.CONFIG_FILE, WORKLOAD_USER)
        plan = self.container.get_plan()
        if plan.services.get(pebble_layer.SERVICE) != layer.services.get(
            pebble_layer.SERVICE
        ) or any(plan.checks.get(name) != check for name, check in layer.checks.items()):
            self.container.add_layer(pebble_layer.SERVICE, layer, combine=True)
            self.container.replan()
            logger.info("workload layer changed; replanned")
        elif files_changed:
            self.container.restart(pebble_layer.SERVICE)
            logger.info("workload configuration changed; restarted")
        else:
            # Idempotent: starts the service if it was stopped, does nothing otherwise.
            self.container.replan()

    def _stop_workload(self) -> None:
        if not self.container.can_connect():
            return
        service = self.container.get_services(pebble_layer.SERVICE).get(pebble_layer.SERVICE)
        if service is not None and service.is_running():
            self.container.stop(pebble_layer.SERVICE)
            logger.info("workload stopped until its inputs are complete")

    def _on_secret_remove(self, event: ops.SecretRemoveEvent) -> None:
        """Drop revisions of our own secrets that no unit reads any more."""
        if event.secret.label and event.secret.label.startswith("cluster-manager-"):
            event.remove_revision()

    # Status.

    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        inputs = self._workload_inputs()
        if isinstance(inputs, ops.BlockedStatus):
            event.add_status(inputs)
            return
        if not self.model.relations[TRAEFIK_ROUTE]:
            event.add_status(ops.BlockedStatus(f"missing integrations: {TRAEFIK_ROUTE}"))
        if isinstance(inputs, ops.StatusBase):
            event.add_status(inputs)
            return
        checks = self.container.get_checks(pebble_layer.READINESS_CHECK)
        ready = checks.get(pebble_layer.READINESS_CHECK)
        if ready is None or ready.status != ops.pebble.CheckStatus.UP:
            event.add_status(ops.WaitingStatus("workload not ready (database unreachable?)"))
            return
        addresses = wc.connector_addresses(
            self.charm_config.cluster_connector_domain,
            routed_by_traefik=True,
            port=pebble_layer.CONNECTOR_PORT,
        )
        event.add_status(
            ops.ActiveStatus(f"UI {self.charm_config.management_url}, connector {addresses[0]}")
        )

    # Actions.

    def _run_cli(self, event: ops.ActionEvent, *arguments: str) -> str | None:
        """Run the workload CLI; on failure fail the action with the workload's message."""
        if not self.container.can_connect() or not self.container.exists(wc.CONFIG_FILE):
            event.fail("the workload is not configured yet; see the unit status")
            return None
        try:
            process = self.container.exec(
                pebble_layer.cli(wc.CONFIG_FILE, *arguments),
                user=WORKLOAD_USER,
                group=WORKLOAD_USER,
                timeout=ACTION_TIMEOUT,
            )
            stdout, _ = process.wait_output()
        except ops.pebble.ExecError as error:
            stderr = error.stderr
            if isinstance(stderr, bytes):
                stderr = stderr.decode(errors="replace")
            event.fail(workload_error(stderr))
            return None
        except (ops.pebble.APIError, ops.pebble.ChangeError, ops.pebble.TimeoutError) as error:
            event.fail(f"could not run the workload command: {error}")
            return None
        return stdout

    def _on_enroll_cluster(self, event: ops.ActionEvent) -> None:
        params = event.load_params(EnrollClusterParams, errors="fail")
        stdout = self._run_cli(event, *params.arguments())
        if stdout is None:
            return
        token = stdout.strip()
        event.set_results({"token": token, "join-command": f"{JOIN_COMMAND} {token}"})

    def _on_list_clusters(self, event: ops.ActionEvent) -> None:
        stdout = self._run_cli(event, "cluster", "list", "--format", "json")
        if stdout is not None:
            event.set_results({"clusters": stdout.strip()})

    def _on_list_join_tokens(self, event: ops.ActionEvent) -> None:
        stdout = self._run_cli(event, "token", "list", "--format", "json")
        if stdout is not None:
            event.set_results({"tokens": stdout.strip()})

    def _on_revoke_join_token(self, event: ops.ActionEvent) -> None:
        params = event.load_params(ClusterParams, errors="fail")
        if self._run_cli(event, "token", "revoke", params.cluster) is not None:
            event.set_results({"message": f"join token for {params.cluster} revoked"})

    def _on_remove_cluster(self, event: ops.ActionEvent) -> None:
        params = event.load_params(ClusterParams, errors="fail")
        if self._run_cli(event, "cluster", "remove", params.cluster) is not None:
            event.set_results({"message": f"cluster {params.cluster} removed"})


if __name__ == "__main__":  # pragma: nocover
    ops.main(ClusterManagerCharm)
