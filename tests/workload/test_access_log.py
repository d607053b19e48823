"""The access log names requests without their query strings (OIDC codes travel there)."""

from __future__ import annotations

import logging
import ssl

import aiohttp


async def test_access_log_leaves_out_the_query_string(server, settings, caplog):
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    context = ssl.create_default_context(cafile=settings.management_cert_file)
    url = f"https://127.0.0.1:{server.management_port}/health/live?code=s3cr3t-code&state=xyz"

    async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
        assert response.status == 200

    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert any("GET /health/live 200" in line for line in lines), lines
    assert not any("s3cr3t" in line for line in lines)
