"""The rate limit in the API on both backends: by client address when no token is needed, 429 in
the one error shape with an integer Retry-After; health, readiness, metrics and the UI's files are
never limited; a limit set with no limiter given is a configuration error."""

from __future__ import annotations

import pytest
from api_support import assert_error, client_for, make_settings

from services.api import create_app
from services.application.errors import ConfigurationError
from services.container import Container

LIMITED = {"api_rate_limit_per_second": 0.01, "api_rate_limit_burst": 2}


async def test_a_client_without_a_token_is_limited_by_its_address(container: Container) -> None:
    container.settings.override(container.settings().model_copy(update=LIMITED))
    try:
        app = create_app(container.workflows, make_settings(**LIMITED), limiter=container.rate_limiter())
    finally:
        container.settings.reset_last_overriding()
    async with client_for(app) as client:
        assert [(await client.get("/api/runs")).status_code for _ in range(2)] == [200, 200]
        limited = await client.get("/api/runs")
        error = assert_error(limited, 429, "rate_limited")
        assert limited.headers["retry-after"] == "100"  # 1 / 0.01 s, whole seconds
        assert "retry after 100 second(s)" in error["message"]
        for path in ("/api/health", "/api/ready", "/api/metrics", "/ui/style.css"):
            assert (await client.get(path)).status_code != 429, path


def test_a_limit_without_a_limiter_is_a_configuration_error(container: Container) -> None:
    with pytest.raises(ConfigurationError, match="API_RATE_LIMIT_PER_SECOND"):
        create_app(container.workflows, make_settings(**LIMITED))
