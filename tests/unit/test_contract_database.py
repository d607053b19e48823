"""Contract with postgresql-k8s (14 and 16): the v0 ``postgresql_client`` exchange.

Both provider branches read and write the requirer's databag through the same data-platform
library (canonical/postgresql-k8s-operator, branches ``main`` = 14 and ``16/edge``:
lib/charms/data_platform_libs/v0/data_interfaces.py, LIBPATCH 58 on both, line 456).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib

import pytest
from charm_scenario import DB_ENDPOINTS, relation, service_status, with_relations
from ops import pebble, testing

# What the provider's DatabaseProvides acts on: "database" *added* to the requirer's app
# databag (data_interfaces.py:3568, DatabaseProviderEventHandlers._on_relation_changed_event),
# after reading "requested-secrets" from it (data_interfaces.py:2393-2397).
# The fields a requirer may ask to get in secrets: data_interfaces.py:2057-2066.
PROVIDER_READS = {"database", "extra-user-roles", "requested-secrets"}
SECRET_FIELDS = {"username", "password", "tls", "tls-ca", "uris", "read-only-uris"}


def _answer_14(**overrides: str) -> dict[str, str]:
    """postgresql-k8s 14's answer, credentials plain (no Juju secrets requested/granted).

    canonical/postgresql-k8s-operator main (docs /14/, metadata.yaml:15)
    src/relations/postgresql_provider.py:120 (user relation_id_<id>), :130 set_credentials,
    :133-136 set_endpoints "<app>-primary.<model>.svc.cluster.local:5432" (src/charm.py:449-451,
    src/constants.py:7), :139 set_uris, :145 set_tls "True"/"False", :159 set_version (the
    server version), :164 set_database.
    """
    answer = {
        "username": "relation_id_7",
        "password": "Pa55word/with:odd?chars",
        "endpoints": DB_ENDPOINTS,
        "uris": f"postgresql://relation_id_7:...@{DB_ENDPOINTS}/cluster_manager",
        "tls": "False",
        "version": "14.15",
        "database": "cluster_manager",
    }
    return {**answer, **overrides}


def _answer_16_in_secret(secret: testing.Secret, **overrides: str) -> dict[str, str]:
    """postgresql-k8s 16's answer when the requirer asked for secrets (requested-secrets).

    canonical/postgresql-k8s-operator 16/edge src/relations/postgresql_provider.py:295
    set_credentials, :298 set_endpoints, :310 set_tls, :323 set_version ("16.14",
    refresh_versions.toml:4), :328 set_database. The library puts fields in the secret group
    "user" (data_interfaces.py:1129-1131) and writes its URI as "secret-user"
    (data_interfaces.py:1451-1453, PROV_SECRET_PREFIX "secret-" at :479).
    """
    answer = {
        "endpoints": DB_ENDPOINTS,
        "tls": "False",
        "version": "16.14",
        "database": "cluster_manager",
        "secret-user": secret.id,
    }
    return {**answer, **overrides}


def _settings(config_dir) -> dict:
    return tomllib.loads((config_dir / "config.toml").read_text())


@pytest.fixture
def fresh_database() -> testing.Relation:
    """A database relation just created: nothing written on either side."""
    return testing.Relation("database", remote_app_name="postgresql-k8s")


def test_leader_requests_the_database_in_the_form_postgresql_k8s_acts_on(
    ctx, running_leader, fresh_database
):
    state = with_relations(running_leader, fresh_database)
    out = ctx.run(ctx.on.relation_created(fresh_database), state)
    request = out.get_relation(fresh_database.id).local_app_data
    assert request["database"] == "cluster_manager"
    assert set(request) <= PROVIDER_READS
    assert set(json.loads(request["requested-secrets"])) <= SECRET_FIELDS
    assert {"username", "password"} <= set(json.loads(request["requested-secrets"]))
    # The v1 form (version/requests) is read by no provider this charm names.
    assert "requests" not in request


def test_request_is_written_once_and_never_rewritten(ctx, running_leader, fresh_database):
    state = with_relations(running_leader, fresh_database)
    first = ctx.run(ctx.on.relation_created(fresh_database), state)
    again = ctx.run(
        ctx.on.relation_changed(first.get_relation(fresh_database.id), remote_unit=0), first
    )
    assert (
        again.get_relation(fresh_database.id).local_app_data
        == first.get_relation(fresh_database.id).local_app_data
    )


def test_non_leader_writes_no_request(other_ctx, container, fresh_database):
    state = testing.State(leader=False, relations={fresh_database}, containers={container})
    out = other_ctx.run(other_ctx.on.relation_created(fresh_database), state)
    assert out.get_relation(fresh_database.id).local_app_data == {}


def test_plain_credentials_of_postgresql_14_reach_the_workload(config_dir, ctx, running_leader):
    database = dataclasses.replace(
        relation(running_leader, "database"), remote_app_data=_answer_14()
    )
    ctx.run(
        ctx.on.relation_changed(database, remote_unit=0), with_relations(running_leader, database)
    )
    assert _settings(config_dir)["database_dsn"] == (
        f"postgresql://relation_id_7:Pa55word%2Fwith%3Aodd%3Fchars@{DB_ENDPOINTS}/cluster_manager"
    )


def test_credentials_in_the_user_secret_of_postgresql_16_reach_the_workload(
    config_dir, ctx, running_leader
):
    secret = testing.Secret(
        {"username": "relation_id_9", "password": "s3cret", "uris": "postgresql://..."}
    )
    database = dataclasses.replace(
        relation(running_leader, "database"), remote_app_data=_answer_16_in_secret(secret)
    )
    state = dataclasses.replace(
        with_relations(running_leader, database), secrets=running_leader.secrets | {secret}
    )
    ctx.run(ctx.on.relation_changed(database, remote_unit=0), state)
    assert _settings(config_dir)["database_dsn"] == (
        f"postgresql://relation_id_9:s3cret@{DB_ENDPOINTS}/cluster_manager"
    )


def test_provider_with_tls_on_gets_an_encrypted_connection(config_dir, ctx, running_leader):
    database = dataclasses.replace(
        relation(running_leader, "database"), remote_app_data=_answer_14(tls="True")
    )
    ctx.run(
        ctx.on.relation_changed(database, remote_unit=0), with_relations(running_leader, database)
    )
    assert _settings(config_dir)["database_dsn"].endswith("/cluster_manager?sslmode=require")


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (
            {"version": "14.15"},
            testing.WaitingStatus("waiting for postgresql-k8s to create the database"),
        ),
        (
            {k: v for k, v in _answer_14().items() if k not in ("username", "password")},
            testing.WaitingStatus("waiting for postgresql-k8s to share the credentials"),
        ),
        (
            _answer_14(endpoints="no port here"),
            testing.BlockedStatus("database answer: endpoints are not host:port"),
        ),
        (
            _answer_14(endpoints="pg:99999"),
            testing.BlockedStatus("database answer: endpoints are not host:port"),
        ),
        (
            _answer_14(database="someone_else"),
            testing.BlockedStatus(
                "database answer: database 'someone_else' is not 'cluster_manager'"
            ),
        ),
        (
            {**_answer_14(), "secret-user": "secret:aaaaaaaaaaaaaaaaaaaa"},
            testing.BlockedStatus("database answer: cannot read the secret-user secret"),
        ),
        (
            {**_answer_14(), "secret-user": "not a uri"},
            testing.BlockedStatus("database answer: secret-user is not a secret URI"),
        ),
        (
            _answer_14(password="bad\x00password"),
            testing.BlockedStatus("database answer: username or password is malformed"),
        ),
    ],
)
def test_unusable_answer_names_the_problem_and_keeps_the_workload(
    config_dir, ctx, running_leader, answer, status
):
    before = _settings(config_dir)
    database = dataclasses.replace(relation(running_leader, "database"), remote_app_data=answer)
    out = ctx.run(
        ctx.on.relation_changed(database, remote_unit=0), with_relations(running_leader, database)
    )
    assert out.unit_status == status
    assert _settings(config_dir) == before
    assert service_status(out) == pebble.ServiceStatus.ACTIVE


def test_upgrade_replaces_the_v1_request_with_the_v0_one(ctx, running_leader):
    """A unit upgraded from the v1 requirer: postgresql-k8s never read that request."""
    legacy = testing.Relation(
        "database",
        remote_app_name="postgresql-k8s",
        local_app_data={
            "version": "v1",
            "requests": json.dumps([{"resource": "cluster_manager"}]),
        },
    )
    out = ctx.run(ctx.on.upgrade_charm(), with_relations(running_leader, legacy))
    request = out.get_relation(legacy.id).local_app_data
    assert request["database"] == "cluster_manager"
    assert "requests" not in request
    assert "version" not in request
