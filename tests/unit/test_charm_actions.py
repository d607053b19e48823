"""Actions run the workload CLI in the container and report its answer or its error."""

import dataclasses
import json

import pytest
from ops import testing

CLI = ("cluster-manager", "--config", "/etc/cluster-manager/config.toml")
TOKEN = "eyJzZWNyZXQiOiAiLi4uIn0="


@pytest.fixture
def configured(config_dir, container) -> testing.State:
    """A unit whose workload configuration is in place, executing nothing yet."""
    (config_dir / "config.toml").write_text('log_level = "INFO"\n')
    return testing.State(leader=False, containers={container})


def _with_execs(state: testing.State, *execs: testing.Exec) -> testing.State:
    container = dataclasses.replace(state.get_container("cluster-manager"), execs=set(execs))
    return dataclasses.replace(state, containers={container})


def _ran(ctx: testing.Context) -> list[list[str]]:
    return [list(call.command) for call in ctx.exec_history["cluster-manager"]]


def test_enroll_cluster_returns_token_and_join_command(ctx, configured):
    state = _with_execs(configured, testing.Exec([*CLI, "token", "create"], stdout=TOKEN + "\n"))
    ctx.run(ctx.on.action("enroll-cluster", params={"cluster": "lyon"}), state)
    assert ctx.action_results == {
        "token": TOKEN,
        "join-command": f"microcloud cluster-manager join {TOKEN}",
    }
    assert _ran(ctx) == [[*CLI, "token", "create", "lyon"]]


def test_enroll_cluster_passes_description_and_lifetime(ctx, configured):
    state = _with_execs(configured, testing.Exec([*CLI, "token", "create"], stdout=TOKEN))
    params = {"cluster": "lyon", "description": "-rack 4, Lyon", "expires-in": "12h"}
    ctx.run(ctx.on.action("enroll-cluster", params=params), state)
    assert _ran(ctx) == [
        [*CLI, "token", "create", "lyon", "--description=-rack 4, Lyon", "--expires-in=12h"]
    ]


def test_workload_error_fails_the_action_with_its_message(ctx, configured):
    state = _with_execs(
        configured,
        testing.Exec(
            [*CLI, "token", "create"],
            return_code=1,
            stderr="Error: cluster lyon is already enrolled\n",
        ),
    )
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("enroll-cluster", params={"cluster": "lyon"}), state)
    assert failure.value.message == "cluster lyon is already enrolled"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"cluster": "bad name"}, "cluster: 'bad name' is not a cluster name"),
        ({"cluster": "-dash"}, "cluster: '-dash' is not a cluster name"),
        ({"cluster": "lyon", "expires-in": "tomorrow"}, "expires-in: 'tomorrow'"),
        ({"cluster": "lyon", "description": "two\nlines"}, "description: one line"),
    ],
)
def test_invalid_enroll_parameters_fail_without_running_anything(ctx, configured, params, message):
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("enroll-cluster", params=params), configured)
    assert message in failure.value.message
    assert ctx.exec_history.get("cluster-manager", []) == []


def test_list_clusters_returns_the_workload_json(ctx, configured):
    clusters = [{"name": "lyon", "status": "ACTIVE", "member_count": 3}]
    state = _with_execs(
        configured,
        testing.Exec([*CLI, "cluster", "list", "--format", "json"], stdout=json.dumps(clusters)),
    )
    ctx.run(ctx.on.action("list-clusters"), state)
    assert json.loads(ctx.action_results["clusters"]) == clusters


def test_list_join_tokens_returns_the_workload_json(ctx, configured):
    tokens = [{"name": "lyon", "description": "", "expires_at": "2030-01-01T00:00:00Z"}]
    state = _with_execs(
        configured,
        testing.Exec([*CLI, "token", "list", "--format", "json"], stdout=json.dumps(tokens)),
    )
    ctx.run(ctx.on.action("list-join-tokens"), state)
    assert json.loads(ctx.action_results["tokens"]) == tokens


def test_revoke_join_token_revokes_the_named_cluster_token(ctx, configured):
    state = _with_execs(configured, testing.Exec([*CLI, "token", "revoke", "lyon"]))
    ctx.run(ctx.on.action("revoke-join-token", params={"cluster": "lyon"}), state)
    assert ctx.action_results == {"message": "join token for lyon revoked"}
    assert _ran(ctx) == [[*CLI, "token", "revoke", "lyon"]]


def test_revoking_a_missing_token_fails_with_the_workload_message(ctx, configured):
    state = _with_execs(
        configured,
        testing.Exec(
            [*CLI, "token", "revoke"], return_code=1, stderr="Error: no join token for paris"
        ),
    )
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("revoke-join-token", params={"cluster": "paris"}), state)
    assert failure.value.message == "no join token for paris"


def test_remove_cluster_removes_the_named_cluster(ctx, configured):
    state = _with_execs(configured, testing.Exec([*CLI, "cluster", "remove", "lyon"]))
    ctx.run(ctx.on.action("remove-cluster", params={"cluster": "lyon"}), state)
    assert ctx.action_results == {"message": "cluster lyon removed"}
    assert _ran(ctx) == [[*CLI, "cluster", "remove", "lyon"]]


def test_actions_run_as_the_workload_user(ctx, configured):
    state = _with_execs(configured, testing.Exec([*CLI, "cluster", "remove"]))
    ctx.run(ctx.on.action("remove-cluster", params={"cluster": "lyon"}), state)
    call = ctx.exec_history["cluster-manager"][0]
    assert (call.user, call.group) == ("_daemon_", "_daemon_")


def test_actions_fail_clearly_before_the_workload_is_configured(ctx, container):
    state = testing.State(containers={container})
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("list-clusters"), state)
    assert failure.value.message == "the workload is not configured yet; see the unit status"


def test_cluster_instances_returns_the_workload_json(ctx, configured):
    listed = [{"name": "web", "project": "default", "type": "container", "status": "Running"}]
    state = _with_execs(
        configured,
        testing.Exec(
            [*CLI, "cluster", "instances", "lyon", "--format", "json"], stdout=json.dumps(listed)
        ),
    )

    ctx.run(ctx.on.action("cluster-instances", params={"cluster": "lyon"}), state)

    assert json.loads(ctx.action_results["instances"]) == listed
    assert _ran(ctx) == [[*CLI, "cluster", "instances", "lyon", "--format", "json"]]


def test_instance_state_runs_the_change_and_returns_its_result(ctx, configured):
    answer = {"cluster": "lyon", "instance": "web", "action": "restart", "result": "success"}
    command = [*CLI, "cluster", "instance-state", "lyon", "web", "restart", "--format", "json"]
    state = _with_execs(configured, testing.Exec(command, stdout=json.dumps(answer)))

    ctx.run(
        ctx.on.action(
            "instance-state", params={"cluster": "lyon", "instance": "web", "action": "restart"}
        ),
        state,
    )

    assert json.loads(ctx.action_results["result"]) == answer
    assert _ran(ctx) == [command]


def test_instance_state_failure_fails_the_action_with_the_workload_message(ctx, configured):
    state = _with_execs(
        configured,
        testing.Exec(
            [*CLI, "cluster", "instance-state"],
            return_code=1,
            stderr="Error: tunnel not connected: enable it with"
            " `microcloud cluster-manager set reverse_tunnel true`\n",
        ),
    )

    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(
            ctx.on.action(
                "instance-state", params={"cluster": "lyon", "instance": "web", "action": "stop"}
            ),
            state,
        )

    assert "reverse_tunnel true" in failure.value.message


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"cluster": "lyon", "instance": "we b", "action": "stop"}, "instance: 'we b'"),
        ({"cluster": "lyon", "instance": "-x", "action": "stop"}, "instance: '-x'"),
        ({"cluster": "bad name", "instance": "web", "action": "stop"}, "cluster: 'bad name'"),
    ],
)
def test_invalid_instance_state_parameters_run_nothing(ctx, configured, params, message):
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("instance-state", params=params), configured)

    assert message in failure.value.message
    assert ctx.exec_history.get("cluster-manager", []) == []
