"""/health, /docs, /openapi.json and the one error shape."""

from __future__ import annotations

import re

import redis
from flask import Flask
from flask.testing import FlaskClient

from orchestrator import create_app


def test_health_reports_database_and_redis(client: FlaskClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "version": "0.1.0", "database": "ok", "redis": "ok"}


def test_health_is_503_when_redis_is_unreachable(app: Flask, tmp_path) -> None:
    config = {key: app.config[key] for key in
              ("SQLALCHEMY_DATABASE_URI", "SECRET_KEY", "JWT_SECRET_KEY", "ENCRYPTION_KEY")}
    # A real Redis client pointed at a socket where nothing listens.
    broken = create_app({**config, "TESTING": True, "DATA_DIR": str(tmp_path / "d"),
                         "REDIS_URL": f"unix://{tmp_path}/no-redis.sock"})
    response = broken.test_client().get("/health")
    assert response.status_code == 503
    assert response.json["redis"] == "unreachable"
    assert response.json["database"] == "ok"


def test_unknown_route_wrong_method_and_bad_json_share_one_shape(client: FlaskClient) -> None:
    not_found = client.get("/no-such-thing")
    assert not_found.status_code == 404
    assert not_found.json["error"]["code"] == "not_found"
    assert set(not_found.json["error"]) == {"code", "message", "details"}
    wrong_method = client.delete("/health")
    assert wrong_method.status_code == 405
    assert wrong_method.json["error"]["code"] == "method_not_allowed"


def test_docs_and_openapi_are_served_without_external_urls(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "swagger-ui-bundle.js" in html
    assert not re.search(r"(src|href)=\"https?://", html), "the page must load no external asset"
    for asset in re.findall(r"(?:src|href)=\"(/docs/static/[^\"]+)\"", html):
        assert client.get(asset).status_code == 200, asset
    spec = client.get("/openapi.json")
    assert spec.status_code == 200
    assert spec.json["openapi"].startswith("3.")
    assert "bearerAuth" in spec.json["components"]["securitySchemes"]


def test_redis_fixture_is_a_real_server(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    assert connection.ping()
    assert connection.info("server")["redis_version"]
