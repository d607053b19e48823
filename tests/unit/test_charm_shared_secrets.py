"""Application secrets: one connector identity and session key for every unit, forever."""

import dataclasses

from charm_scenario import CONNECTOR_DOMAIN, non_leader_view, relation
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from ops import testing

from connector_cert import fingerprint


def _shared_secret(state: testing.State) -> testing.Secret:
    return next(s for s in state.secrets if s.label == "cluster-manager-shared")


def _connector_certificate(state: testing.State) -> str:
    return _shared_secret(state).latest_content["connector-certificate"]


def test_leader_creates_one_p256_connector_certificate_for_the_connector_domain(running_leader):
    secret = _shared_secret(running_leader)
    assert secret.owner == "app"
    certificate = x509.load_pem_x509_certificate(
        secret.latest_content["connector-certificate"].encode()
    )
    key = certificate.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.curve.name == "secp256r1"
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [CONNECTOR_DOMAIN]
    assert len(bytes.fromhex(secret.latest_content["session-key"])) == 32


def test_workload_serves_the_shared_connector_identity(config_dir, running_leader):
    secret = _shared_secret(running_leader)
    assert (config_dir / "connector.crt").read_text() == secret.latest_content[
        "connector-certificate"
    ]
    assert (config_dir / "connector.key").read_text() == secret.latest_content[
        "connector-private-key"
    ]
    assert (config_dir / "session.key").read_text() == secret.latest_content["session-key"]


def test_connector_certificate_survives_upgrade_scaling_and_certificate_renewal(
    ctx, running_leader
):
    pinned = fingerprint(_connector_certificate(running_leader))
    state = ctx.run(ctx.on.upgrade_charm(), running_leader)
    peer = relation(state, "cluster-manager-peers")
    scaled = dataclasses.replace(peer, peers_data={1: {}, 2: {}})
    state = dataclasses.replace(state, relations=(state.relations - {peer}) | {scaled})
    state = ctx.run(ctx.on.relation_joined(scaled, remote_unit=2), state)
    state = ctx.run(ctx.on.leader_elected(), state)
    certificates = relation(state, "certificates")
    state = ctx.run(ctx.on.relation_changed(certificates), state)
    assert fingerprint(_connector_certificate(state)) == pinned


def test_new_connector_domain_makes_a_new_certificate_for_it(ctx, running_leader):
    old = _connector_certificate(running_leader)
    state = dataclasses.replace(
        running_leader,
        config={**running_leader.config, "cluster-connector-domain": "clusters.example.org"},
    )
    out = ctx.run(ctx.on.config_changed(), state)
    new = _connector_certificate(out)
    assert fingerprint(new) != fingerprint(old)
    sans = x509.load_pem_x509_certificate(new.encode()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert sans.value.get_values_for_type(x509.DNSName) == ["clusters.example.org"]
    # The session key is not tied to the domain and stays.
    assert (
        _shared_secret(out).latest_content["session-key"]
        == _shared_secret(running_leader).latest_content["session-key"]
    )


def test_leader_announces_secret_ids_to_peers(running_leader):
    peer_data = relation(running_leader, "cluster-manager-peers").local_app_data
    ids = {s.label: s.id for s in running_leader.secrets}
    assert peer_data["shared-secret-id"] == ids["cluster-manager-shared"]
    assert peer_data["management-tls-secret-id"] == ids["cluster-manager-management-tls"]
    assert peer_data["shared-secret-digest"]
    assert peer_data["management-tls-secret-digest"]


def test_non_leader_waits_until_the_leader_shared_the_secrets(
    other_ctx, running_leader, container
):
    state = non_leader_view(running_leader, container)
    peer = relation(state, "cluster-manager-peers")
    silent_peer = dataclasses.replace(peer, local_app_data={})
    state = dataclasses.replace(state, relations=(state.relations - {peer}) | {silent_peer})
    out = other_ctx.run(other_ctx.on.config_changed(), state)
    assert out.unit_status == testing.WaitingStatus(
        "waiting for the leader to share the application secrets"
    )
    assert out.get_container("cluster-manager").plan.services == {}
    assert out.secrets == state.secrets


def test_non_leader_serves_the_same_certificates_as_the_leader(
    other_ctx, running_leader, container, config_dir, tmp_path
):
    leader_files = {
        name: (config_dir / name).read_text()
        for name in (
            "connector.crt",
            "connector.key",
            "session.key",
            "management.crt",
            "management.key",
        )
    }
    other_dir = tmp_path / "other-unit"
    other_dir.mkdir()
    other_container = dataclasses.replace(
        container,
        mounts={"config": testing.Mount(location="/etc/cluster-manager", source=other_dir)},
    )
    state = non_leader_view(running_leader, other_container)
    peer = relation(state, "cluster-manager-peers")
    out = other_ctx.run(other_ctx.on.relation_changed(peer, remote_unit=0), state)
    for name, content in leader_files.items():
        assert (other_dir / name).read_text() == content, name
    assert out.get_container("cluster-manager").service_statuses


def test_non_leader_never_creates_or_changes_secrets(other_ctx, running_leader, container):
    state = non_leader_view(running_leader, container)
    peer = relation(state, "cluster-manager-peers")
    out = other_ctx.run(other_ctx.on.relation_changed(peer, remote_unit=0), state)
    assert out.secrets == state.secrets
