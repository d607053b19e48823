"""The log: no query strings (OIDC codes travel there), and no line a client can forge."""

from __future__ import annotations

import io
import logging
import re
import socket
import ssl

import aiohttp
import pytest
from cluster_manager.logs import CONTINUATION, EscapingFormatter, escape

RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: ")


async def test_access_log_leaves_out_the_query_string(server, settings, caplog):
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    context = ssl.create_default_context(cafile=settings.management_cert_file)
    url = f"https://127.0.0.1:{server.management_port}/health/live?code=s3cr3t-code&state=xyz"

    async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
        assert response.status == 200

    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert any('GET "/health/live" 200' in line for line in lines), lines
    assert not any("s3cr3t" in line for line in lines)


def raw_get(port: int, cafile: str, target: str) -> bytes:
    """Send one request line exactly as written (no client library re-encodes it)."""
    context = ssl.create_default_context(cafile=cafile)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        return answer


FORGED = '2026-01-01 00:00:00,000 INFO aiohttp.access: 10.0.0.1 GET "/1.0/admin" 200 1.0ms'


@pytest.mark.parametrize(
    ("encoded", "written"),
    [
        ("%0a", "\\x0a"),
        ("%0d%0a", "\\x0d\\x0a"),
        ("%1b[2J", "\\x1b[2J"),  # a terminal escape that would clear the screen
        ("%e2%80%a8", "\\u2028"),  # Unicode line separator
        ("%e2%80%ae", "\\u202e"),  # right-to-left override
        ("%22", '\\"'),  # a quote cannot close the quoted path early
        ("%5c", "\\\\"),  # nor can a backslash fake an escape
    ],
)
def test_control_characters_in_a_path_cannot_forge_a_log_line(server_process, encoded, written):
    unit = server_process()
    settings = unit.settings
    forged = FORGED.replace(" ", "%20").replace('"', "%22")
    target = f"/probe{encoded}{forged}"

    answer = raw_get(settings.management_port, settings.management_cert_file, target)
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    unit.stop()  # flush and close the log

    log = unit.config.with_suffix(".log").read_text()
    lines = log.splitlines()
    assert lines
    for line in lines:
        assert RECORD_START.match(line) or line.startswith(CONTINUATION), line
    access = [line for line in lines if "/probe" in line]
    assert len(access) == 1, access
    assert f"/probe{written}2026-01-01" in access[0]
    assert not any(line.startswith("2026-01-01") for line in lines)


def format_record(message: str, *args: object, exc_info: bool = False) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(EscapingFormatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("test.escaping")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        if exc_info:
            try:
                raise ValueError("bad\nINFO fake: line")
            except ValueError:
                logger.exception(message, *args)
        else:
            logger.warning(message, *args)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_every_argument_of_every_record_is_escaped():
    text = format_record("signed in %s after %d tries (%.1f s)", 'eve"\nINFO x: admin', 3, 1.5)
    assert text == (
        'WARNING test.escaping: signed in eve\\"\\x0aINFO x: admin after 3 tries (1.5 s)\n'
    )


def test_a_message_without_arguments_stays_on_one_line():
    assert format_record("two\nlines\r\x00") == "WARNING test.escaping: two\\x0alines\\x0d\\x00\n"


def test_traceback_lines_are_marked_as_continuations():
    text = format_record("failed for %s", "path\n", exc_info=True)
    first, *rest = text.rstrip("\n").split("\n")
    assert first == "ERROR test.escaping: failed for path\\x0a"
    assert rest
    assert all(line.startswith(CONTINUATION) for line in rest), rest
    assert any("INFO fake: line" in line for line in rest)  # the exception text, marked


def test_escape_keeps_printable_text_as_it_is():
    assert escape("edge-1 /1.0/remote-cluster?x=é") == "edge-1 /1.0/remote-cluster?x=é"
    assert escape(None) == "None"
    assert escape("a\u00a0b\tc") == "a\\xa0b\\x09c"  # a no-break space is not a plain space
