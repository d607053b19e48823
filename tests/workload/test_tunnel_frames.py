"""The manager's frames as the MicroCloud daemon's Go code reads them.

canonical/microcloud ``api/types/cluster_manager.go`` lines 109-125: the request struct has
``UUID string `json:"uuid"```, ``Headers http.Header`` (``{name: [values]}``) and
``Body []byte`` (base64); the simulator's ``decode_request`` reads a frame the way
``encoding/json`` fills that struct, failing where ``conn.ReadJSON`` fails (the daemon then
drops the tunnel, ``cmd/microcloudd/cluster_manager_tunnel.go`` lines 204-210).
"""

from __future__ import annotations

import json

import pytest
from cluster_manager.fleet.tunnel import answer, decode_request
from cluster_manager.tunnel import frames


def test_request_frame_is_read_by_the_daemon_with_its_id_and_body():
    text = frames.encode_request("abc", "PUT", "/1.0/instances/x/state", b'{"action":"stop"}')

    request = decode_request(text)

    assert request == {
        "uuid": "abc",
        "method": "PUT",
        "path": "/1.0/instances/x/state",
        "body": b'{"action":"stop"}',
        "authorization": "",
        "cookie": "",
    }


def test_credentials_reach_the_daemon_under_the_names_it_reads():
    """The daemon passes on only ``Authorization`` and ``Cookie``, read with ``Get``.

    canonical/microcloud f26e73c0 ``cmd/microcloudd/cluster_manager_tunnel.go`` lines 251-252;
    ``Get`` looks up Go's canonical name, so a lower-case name would be lost.
    """
    text = frames.encode_request(
        "abc", "GET", "/1.0/instances", headers={"authorization": "Bearer tok-1"}
    )

    assert json.loads(text)["headers"] == {"Authorization": ["Bearer tok-1"]}
    assert decode_request(text)["authorization"] == "Bearer tok-1"
    assert frames.canonical("x-lxd-authenticated") == "X-Lxd-Authenticated"


def test_header_as_a_plain_string_would_make_the_daemon_drop_the_tunnel():
    frame = json.loads(frames.encode_request("abc", "GET", "/1.0", headers={"Cookie": "a=b"}))
    assert frame["headers"] == {"Cookie": ["a=b"]}
    decode_request(json.dumps(frame))

    frame["headers"] = {"Cookie": "a=b"}  # the {name: value} form of PROTOCOL.md
    with pytest.raises(ValueError, match=r"http\.Header"):
        decode_request(json.dumps(frame))


def test_daemon_answer_without_body_is_read_as_empty():
    parsed = frames.decode_answer(answer("abc", 500))

    assert (parsed.id, parsed.status, parsed.body) == ("abc", 500, b"")
    assert frames.lxd_envelope(parsed.body or b"") is None


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("not json", "frame: not valid JSON"),
        ("[1]", "frame: expected object, got array"),
        ('{"status": 200}', "no request id"),
        ('{"uuid": "a", "status": "200"}', "status: expected int, got str"),
        ('{"uuid": "a", "status": 600}', "status: expected int ≤ 599"),
        ('{"uuid": "a", "status": 200, "body": "***"}', "body: invalid base64"),
        (
            '{"uuid": "a", "status": 200, "headers": {"X": "y"}}',
            r"headers\[\.\.\.\]: expected array",
        ),
    ],
)
def test_frames_that_are_not_answers_are_refused_with_a_reason(frame, reason):
    with pytest.raises(frames.FrameError, match=reason):
        frames.decode_answer(frame)


def test_answer_with_lxd_cookies_in_gos_shape_is_read():
    """An LXD answer that set a cookie, as the daemon writes it.

    canonical/microcloud ``cmd/microcloudd/cluster_manager_tunnel.go`` line 293 sends
    ``Cookies: lxdResponse.Cookies()`` (``api/types/cluster_manager.go`` line 123:
    ``[]*http.Cookie``, no JSON tags, so Go writes the struct's field names); upstream's
    manager reads the ``session`` cookie from it (canonical/microcloud-cluster-manager
    ``internal/app/cluster-connector/api/v1/remote_cluster.go``, ``setUserSession``).
    """
    cookie = {
        "Name": "session",
        "Value": "abc",
        "Quoted": False,
        "Path": "/",
        "Domain": "",
        "Expires": "0001-01-01T00:00:00Z",
        "RawExpires": "",
        "MaxAge": 0,
        "Secure": True,
        "HttpOnly": True,
        "SameSite": 3,
        "Partitioned": False,
        "Raw": "session=abc; Path=/; Secure; HttpOnly; SameSite=Strict",
        "Unparsed": None,
    }
    frame = json.loads(answer("abc", 200, b'{"type":"sync"}'))
    assert frame["cookies"] == []  # LXD set none: an empty list, not null
    frame["cookies"] = [cookie]
    frame["headers"]["Set-Cookie"] = [cookie["Raw"]]

    parsed = frames.decode_answer(json.dumps(frame))

    assert (parsed.id, parsed.status, parsed.body) == ("abc", 200, b'{"type":"sync"}')
    assert json.loads(answer("abc", 500))["cookies"] is None  # the daemon's own answers
