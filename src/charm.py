#!/usr/bin/env python3
"""Charm for the MicroCloud Cluster Manager: wiring and status.

One idempotent reconcile brings the workload container, the application secrets and
Traefik's routes in line with config and integrations; collect-status alone sets status.
"""

from __future__ import annotations

import dataclasses
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
from charms.microcloud_cluster_manager_k8s.v0 import postgresql_client as pg
from charms.microcloud_cluster_manager_k8s.v0.traefik_route import TraefikRouteRequirer
from cosl import JujuTopology

import dashboards
import log_forwarding
import metrics_endpoint
import pebble_layer
import traefik_config
import unit_address
import workload_config as wc
from actions import (
    JOIN_COMMAND,
    ClusterParams,
    EnrollClusterParams,
    InstanceStateParams,
    workload_error,
)
from config import OIDC_SECRET_KEY, CharmConfig, ConfigError
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
# Written into the image by rockcraft.yaml: the workload's version.
VERSION_FILE = PurePosixPath("/usr/share/cluster-manager/version")
SERVED_PORTS = (
    pebble_layer.MANAGEMENT_PORT,
    pebble_layer.CONNECTOR_PORT,
    pebble_layer.OPS_PORT,
    wc.INTERNAL_PORT,
)


class InputProblem(Exception):
    """An input the workload needs is missing or wrong; carries the status that says so.

    ``stop`` is True only when the workload cannot serve at all (a required integration is
    gone); every other problem leaves a running workload on its last good configuration.
    """

    def __init__(self, status: ops.StatusBase, stop: bool = False):
        super().__init__(status.message)
        self.status = status
        self.stop = stop


class ClusterManagerCharm(ops.CharmBase):
    """Runs the Cluster Manager behind Traefik, with PostgreSQL and TLS from integrations."""

    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.container = self.unit.get_container(CONTAINER)
        self._stored.set_default(last_good_config={})
        self.config_problem: str | None = None  # why the options in use are not the current
        self.charm_config = self._usable_config()
        self.secrets = SecretStore(self.model, PEER)
        self._address: str | None = None
        self._address_looked_up = False
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
            self.on[DATABASE].relation_created,
            self.on[DATABASE].relation_joined,
            self.on[DATABASE].relation_changed,
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
        framework.observe(self.on.cluster_instances_action, self._on_cluster_instances)
        framework.observe(self.on.instance_state_action, self._on_instance_state)

    def _usable_config(self) -> CharmConfig:
        """The options if they are valid and complete, else the last ones that were.

        A typo in ``juju config`` must not take the service down: the charm keeps working
        with the last good options and collect-status names the bad one (``config_problem``).
        """
        try:
            config = self.load_config(CharmConfig)
        except ConfigError as error:
            self.config_problem = f"invalid config: {error}"
            config = None
        if config is not None and not config.missing_options():
            last_good = dataclasses.asdict(config)
            if dict(self._stored.last_good_config) != last_good:
                self._stored.last_good_config = last_good
            return config
        if not self._stored.last_good_config:
            return config or CharmConfig()  # nothing ever served; the inputs say what is missing
        if config is not None:
            self.config_problem = f"missing config: {', '.join(config.missing_options())}"
        return CharmConfig(**dict(self._stored.last_good_config))

    # What the charm asks of others.

    def _certificate_requests(self) -> list[CertificateRequestAttributes]:
        domain = self.charm_config.management_api_domain
        if not domain and self.config_problem and self.unit.is_leader():
            # Bad options and none remembered: keep asking for the certificate in use, or
            # the certificates library would withdraw its request.
            tls = self.secrets.management_tls()
            domain = min(tls.names) if tls is not None and len(tls.names) == 1 else ""
        if not domain:
            return []
        return [CertificateRequestAttributes(common_name=domain, sans_dns=[domain])]

    def _connector_names(self) -> list[str]:
        domain = self.charm_config.cluster_connector_domain
        return [domain] if domain else []

    # What others handed over.

    def _database_credentials(self) -> wc.DatabaseCredentials:
        """The credentials postgresql-k8s answered with; else the problem, as a status."""
        relation = self.model.get_relation(DATABASE)
        if relation is None:
            raise InputProblem(ops.BlockedStatus(f"missing integrations: {DATABASE}"), stop=True)
        answer = pg.read_answer(self.model, relation, DATABASE_NAME)
        if isinstance(answer, pg.Problem):
            status = ops.BlockedStatus if answer.blocked else ops.WaitingStatus
            raise InputProblem(status(answer.message))
        return wc.DatabaseCredentials(
            endpoints=answer.endpoints,
            username=answer.username,
            password=answer.password,
            database=answer.database,
            tls=answer.tls,
        )

    def _oidc_client_secret(self) -> str:
        """The client secret: the option's value, or the content of the secret it names."""
        uri = self.charm_config.oidc_client_secret_uri
        if uri is None:
            return self.charm_config.oidc_client_secret
        try:
            content = self.model.get_secret(id=uri).get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError):
            raise InputProblem(
                ops.BlockedStatus(
                    f"oidc-client-secret: cannot read {uri}; run juju grant-secret for it"
                )
            ) from None
        value = content.get(OIDC_SECRET_KEY, "")
        if not value or "\n" in value or len(value) > 1024:
            raise InputProblem(
                ops.BlockedStatus(f"oidc-client-secret: {uri} has no one-line {OIDC_SECRET_KEY}")
            )
        return value

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

    def _own_address(self) -> str | None:
        """The name (or address) other units and Traefik reach this unit on (once per hook)."""
        if self._address_looked_up:
            return self._address
        self._address_looked_up = True
        binding = self.model.get_binding(PEER)
        ingress = None
        if binding is not None:
            try:
                ingress = str(binding.network.ingress_address)
            except (ops.ModelError, TypeError):
                ingress = None
        self._address = unit_address.own_address(ingress)
        return self._address

    def _unit_hosts(self) -> list[str]:
        """Every unit's address: this unit's own, and what each peer published."""
        hosts = set()
        own = self._own_address()
        if own:
            hosts.add(own)
        peer = self.model.get_relation(PEER)
        if peer is not None:
            for unit in peer.units:
                published = peer.data[unit].get(unit_address.PEER_KEY)
                if unit_address.is_host(published):
                    hosts.add(published)
        return sorted(hosts)

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
        self._publish_address()
        if self.unit.is_leader():
            self._reconcile_leader()
        self._publish_telemetry()
        self.unit.set_ports(*SERVED_PORTS)
        if self.container.can_connect():
            self._forward_logs()
            self._set_workload_version()
        try:
            inputs = self._workload_inputs()
        except InputProblem as problem:
            if problem.stop:
                self._stop_workload()
            else:
                logger.info("workload left as it is: %s", problem.status.message)
            return
        self._configure_workload(*inputs)

    def _publish_address(self) -> None:
        peer = self.model.get_relation(PEER)
        address = self._own_address()
        if (
            peer is not None
            and address
            and peer.data[self.unit].get(unit_address.PEER_KEY) != address
        ):
            peer.data[self.unit][unit_address.PEER_KEY] = address

    def _reconcile_leader(self) -> None:
        database = self.model.get_relation(DATABASE)
        if database is not None:
            pg.request(database, self.app, DATABASE_NAME)
        for relation in self.model.relations[SEND_CA_CERT]:
            # The library says so only in relation-created; a new leader or an upgraded
            # charm says it again, or providers keep answering in the v0 form.
            if relation.data[self.app].get("version") != "1":
                relation.data[self.app]["version"] = "1"
        if self.model.get_relation(PEER) is None:
            return
        self.secrets.ensure_shared(self._connector_names())
        tls = self._assigned_management_tls()
        if tls is not None:
            self.secrets.publish_management_tls(tls)
        config = self.charm_config
        if (
            self.traefik_route.relation is not None
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
                ),
                raw=True,
            )

    def _publish_telemetry(self) -> None:
        """Scrape targets (every unit) and, from the leader, scrape jobs and dashboards."""
        address = self._own_address()
        for relation in self.model.relations[METRICS_ENDPOINT]:
            if address:
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
        # The label COS dashboards select logs by, as Loki's own log forwarding sets it.
        labels["job"] = f"juju_{JujuTopology.from_charm(self).identifier}"
        layer = log_forwarding.build_layer(urls, planned, labels, pebble_layer.SERVICE)
        if log_forwarding.needs_update(layer, planned):
            self.container.add_layer(log_forwarding.LAYER, layer, combine=True)
            logger.info("log forwarding now goes to %d Loki endpoints", len(urls))

    def _workload_inputs(
        self,
    ) -> tuple[wc.DatabaseCredentials, SharedSecrets, ManagementTls, str, str]:
        """Everything the workload needs; raises InputProblem saying what is missing."""
        missing_options = self.charm_config.missing_options()
        if missing_options:
            # Config never stops a running service (it may run on options set before).
            raise InputProblem(ops.BlockedStatus(f"missing config: {', '.join(missing_options)}"))
        missing = [name for name in (DATABASE, CERTIFICATES) if not self.model.relations[name]]
        if missing:
            raise InputProblem(
                ops.BlockedStatus(f"missing integrations: {', '.join(missing)}"), stop=True
            )
        if not self.container.can_connect():
            raise InputProblem(ops.WaitingStatus("waiting for Pebble in the workload container"))
        oidc_client_secret = self._oidc_client_secret()
        database = self._database_credentials()
        shared = self.secrets.shared()
        if shared is None or shared.connector is None or shared.internal_key is None:
            raise InputProblem(
                ops.WaitingStatus("waiting for the leader to share the application secrets")
            )
        tls = self.secrets.management_tls()
        domain = self.charm_config.management_api_domain
        if tls is None or domain not in tls.names:
            raise InputProblem(ops.WaitingStatus(f"waiting for a certificate for {domain}"))
        own_address = self._own_address()
        if own_address is None:
            raise InputProblem(ops.WaitingStatus("waiting for this unit's network address"))
        return database, shared, tls, oidc_client_secret, own_address

    def _files(
        self,
        database: wc.DatabaseCredentials,
        shared: SharedSecrets,
        tls: ManagementTls,
        oidc_client_secret: str,
        own_address: str,
    ) -> dict[PurePosixPath, tuple[str, int]]:
        assert shared.connector is not None
        assert shared.internal_key is not None
        trusted_cas = sorted(self.trusted_cas.get_all_certificates())
        addresses = wc.connector_addresses(
            self.charm_config.cluster_connector_domain,
            routed_by_traefik=self.traefik_route.relation is not None,
            port=pebble_layer.CONNECTOR_PORT,
            unit_hosts=self._unit_hosts(),
        )
        settings = wc.settings(
            self.charm_config,
            database,
            addresses,
            bool(trusted_cas),
            self._observability(),
            oidc_client_secret=oidc_client_secret,
            internal_host=own_address,
        )
        files = {
            wc.CONFIG_FILE: (wc.render_toml(settings), 0o600),
            wc.MANAGEMENT_CERT_FILE: (tls.chain, 0o644),
            wc.MANAGEMENT_KEY_FILE: (tls.private_key, 0o600),
            wc.CONNECTOR_CERT_FILE: (shared.connector.certificate, 0o644),
            wc.CONNECTOR_KEY_FILE: (shared.connector.private_key, 0o600),
            wc.SESSION_KEY_FILE: (shared.session_key, 0o600),
            wc.INTERNAL_KEY_FILE: (shared.internal_key, 0o600),
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
        self,
        database: wc.DatabaseCredentials,
        shared: SharedSecrets,
        tls: ManagementTls,
        oidc_client_secret: str,
        own_address: str,
    ) -> None:
        files = self._files(database, shared, tls, oidc_client_secret, own_address)
        files_changed = self._push_changed(files)
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

    def _set_workload_version(self) -> None:
        try:
            version = self.container.pull(VERSION_FILE).read().strip()
        except (ops.pebble.PathError, ops.pebble.APIError):
            return
        if version and len(version) <= 64:
            self.unit.set_workload_version(version)

    def _on_secret_remove(self, event: ops.SecretRemoveEvent) -> None:
        """Drop revisions of our own secrets that no unit reads any more."""
        if event.secret.label and event.secret.label.startswith("cluster-manager-"):
            event.remove_revision()

    # Status.

    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        if self.config_problem:
            event.add_status(ops.BlockedStatus(self.config_problem))
            return
        try:
            self._workload_inputs()
        except InputProblem as problem:
            if isinstance(problem.status, ops.BlockedStatus):
                event.add_status(problem.status)
                return
            if not self.model.relations[TRAEFIK_ROUTE]:
                event.add_status(ops.BlockedStatus(f"missing integrations: {TRAEFIK_ROUTE}"))
            event.add_status(problem.status)
            return
        if not self.model.relations[TRAEFIK_ROUTE]:
            event.add_status(ops.BlockedStatus(f"missing integrations: {TRAEFIK_ROUTE}"))
        checks = self.container.get_checks(pebble_layer.READINESS_CHECK)
        ready = checks.get(pebble_layer.READINESS_CHECK)
        if ready is None or ready.status != ops.pebble.CheckStatus.UP:
            event.add_status(ops.WaitingStatus("workload not ready (database unreachable?)"))
            return
        addresses = wc.connector_addresses(
            self.charm_config.cluster_connector_domain,
            routed_by_traefik=True,
            port=pebble_layer.CONNECTOR_PORT,
            unit_hosts=(),
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

    def _on_cluster_instances(self, event: ops.ActionEvent) -> None:
        params = event.load_params(ClusterParams, errors="fail")
        stdout = self._run_cli(event, "cluster", "instances", params.cluster, "--format", "json")
        if stdout is not None:
            event.set_results({"instances": stdout.strip()})

    def _on_instance_state(self, event: ops.ActionEvent) -> None:
        params = event.load_params(InstanceStateParams, errors="fail")
        stdout = self._run_cli(event, *params.arguments())
        if stdout is not None:
            event.set_results({"result": stdout.strip()})


if __name__ == "__main__":  # pragma: nocover
    ops.main(ClusterManagerCharm)
