"""Schemathesis against the route's own OpenAPI document (``/openapi.json``): generated
requests to every operation, authenticated as a user and with the API key, against a real
``python -m cim_route`` with real NATS and Redis. No answer is a 5xx, and every 4xx carries the
error envelope ``{error, detail}``. Bounded: a few examples per operation, no deadline (the
machine is shared)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import nats
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from cim_cli.ops.services import Service, free_port
from shared.registry import NodeInfo
from shared.registry_nats import DEFAULT_BUCKET, NatsKvRegistry
from tests.harness import API_KEY
from tests.route.conftest import PASSWORD, route_env, start_route_process, stop_process

EXAMPLES = 10
USER = "fuzz-user"
REFRESH_S = 600
"""The fake node's record lives 3 refresh periods: the whole run, without refreshing."""
NODE = NodeInfo(id="fuzz-node", host="127.0.0.1", port=9)


async def _registry(nats_url: str, announce: bool) -> None:
    nc = await nats.connect(nats_url)
    try:
        registry = await NatsKvRegistry.open(nc.jetstream(), DEFAULT_BUCKET, REFRESH_S)
        await (registry.announce(NODE) if announce else registry.withdraw(NODE.id))
    finally:
        await nc.close()


@pytest.fixture(scope="module")
def route_url(
    nats_service: Service, redis_service: Service, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = free_port()
    env = route_env(
        nats_service,
        redis_service,
        port,
        redis_prefix="fuzz:",
        api_keys=API_KEY,
        registry_refresh_s=REFRESH_S,
        scrypt_n=2,
        auth_rate=0,
        rate_limit=0,
        log_level="warning",
    )
    log = tmp_path_factory.mktemp("route") / "route.log"
    proc = start_route_process(env, log, port)
    try:
        asyncio.run(_registry(nats_service.url, announce=True))  # so that /login and /readyz answer 2xx
        url = f"http://127.0.0.1:{port}"
        httpx.post(f"{url}/api/v1/users", json={"username": USER, "password": PASSWORD}, timeout=10)
        yield url
    finally:
        asyncio.run(_registry(nats_service.url, announce=False))
        stop_process(proc)
        errors = [line for line in log.read_text().splitlines() if " ERROR " in line or "Traceback" in line]
        assert not errors, "\n".join(errors)


class Credentials:
    """The user's token (a new one after a generated ``/logout``, kick or password change
    revoked it) and the API key: every call is authenticated both ways."""

    def __init__(self, route_url: str) -> None:
        self._url = route_url
        self._token = ""

    def headers(self) -> dict[str, str]:
        if not self._token:
            resp = httpx.post(
                f"{self._url}/api/v1/login", json={"username": USER, "password": PASSWORD}, timeout=10
            )
            self._token = resp.json()["token"] if resp.status_code == 200 else ""
        return {"X-API-Key": API_KEY, "Authorization": f"Bearer {self._token}"}

    def answered(self, status: int) -> None:
        if status == 401:
            self._token = ""


def check(case: schemathesis.Case, route_url: str, creds: Credentials) -> None:
    response = case.call(base_url=route_url, headers=creds.headers(), timeout=10)
    creds.answered(response.status_code)
    where = f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
    assert response.status_code < 500, where
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body.get("error"), str) and isinstance(body.get("detail"), str), where


def test_no_server_errors_and_every_4xx_has_the_envelope(route_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{route_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    creds = Credentials(route_url)
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
                phases=[Phase.generate],
            )
            def run(case: schemathesis.Case) -> None:
                check(case, route_url, creds)

            try:
                run()
            except Unsatisfiable:  # nothing of this operation can be made invalid
                assert mode is GenerationMode.NEGATIVE, operation.label
