"""Tenant isolation: another tenant's resources look exactly like missing ones.

To cover a new resource, add a factory to ``RESOURCE_FACTORIES`` (it creates one
resource owned by the given user and returns its id) and its URLs to
``CROSS_TENANT_REQUESTS``; add the list URL to ``LIST_URLS`` with the JSON
path to its items.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

#: kind -> factory(make_user fixture's user dict, fixtures) -> id of a new resource of that user.
ResourceFactory = Callable[[dict[str, Any], "Fixtures"], str]


class Fixtures:
    """The fixtures a resource factory may need, in one object."""

    def __init__(self, client: FlaskClient, make_api_key: Any) -> None:
        self.client = client
        self.make_api_key = make_api_key


def create_api_key(owner: dict[str, Any], fx: Fixtures) -> str:
    response = fx.client.post("/auth/api-keys", headers=owner["headers"],
                              json={"name": "tenant A's key"})
    assert response.status_code == 201
    return response.json["id"]


RESOURCE_FACTORIES: dict[str, ResourceFactory] = {
    "api_key": create_api_key,
}

#: (kind, HTTP method, URL with ``{id}``, an id of the right shape that does not exist).
CROSS_TENANT_REQUESTS: list[tuple[str, str, str, str]] = [
    ("api_key", "GET", "/auth/api-keys/{id}", "key_000000000000000000000000"),
    ("api_key", "DELETE", "/auth/api-keys/{id}", "key_000000000000000000000000"),
]

#: (kind, list URL, function extracting the listed ids from the JSON body).
LIST_URLS: list[tuple[str, str, Callable[[Any], list[str]]]] = [
    ("api_key", "/auth/api-keys", lambda body: [item["id"] for item in body]),
]


@pytest.fixture
def fx(client: FlaskClient, make_api_key: Any) -> Fixtures:
    return Fixtures(client, make_api_key)


def request(client: FlaskClient, method: str, url: str, headers: dict[str, str]) -> Any:
    return client.open(url, method=method, headers=headers)


@pytest.mark.parametrize("kind, method, url, missing_id", CROSS_TENANT_REQUESTS)
def test_other_tenants_resource_is_a_404_like_a_missing_one(
        client: FlaskClient, make_user: Any, fx: Fixtures,
        kind: str, method: str, url: str, missing_id: str) -> None:
    tenant_a, tenant_b = make_user(), make_user()
    assert tenant_a["tenant_id"] != tenant_b["tenant_id"]
    resource_id = RESOURCE_FACTORIES[kind](tenant_a, fx)

    foreign = request(client, method, url.format(id=resource_id), tenant_b["headers"])
    missing = request(client, method, url.format(id=missing_id), tenant_b["headers"])

    assert foreign.status_code == missing.status_code == 404
    normalised = foreign.get_data(as_text=True).replace(resource_id, missing_id)
    assert normalised == missing.get_data(as_text=True)
    # The owner still sees it, untouched by the other tenant's request.
    owner_view = request(client, "GET", url.format(id=resource_id), tenant_a["headers"])
    assert owner_view.status_code == 200, owner_view.json
    assert owner_view.json.get("revoked") in (None, False)


@pytest.mark.parametrize("kind, url, listed_ids", LIST_URLS)
def test_lists_show_only_the_callers_tenant(
        client: FlaskClient, make_user: Any, fx: Fixtures,
        kind: str, url: str, listed_ids: Callable[[Any], list[str]]) -> None:
    tenant_a, tenant_b = make_user(), make_user()
    own_a = RESOURCE_FACTORIES[kind](tenant_a, fx)
    own_b = RESOURCE_FACTORIES[kind](tenant_b, fx)

    seen_by_b = listed_ids(client.get(url, headers=tenant_b["headers"]).json)
    seen_by_a = listed_ids(client.get(url, headers=tenant_a["headers"]).json)

    assert own_b in seen_by_b and own_a not in seen_by_b
    assert own_a in seen_by_a and own_b not in seen_by_a


def test_tenant_as_key_keeps_working_after_tenant_bs_delete(
        client: FlaskClient, make_user: Any, make_api_key: Any) -> None:
    tenant_a, tenant_b = make_user(), make_user()
    raw = make_api_key(tenant_a["user_id"])
    key_id = client.get("/auth/api-keys", headers=tenant_a["headers"]).json[0]["id"]
    assert client.delete(f"/auth/api-keys/{key_id}", headers=tenant_b["headers"]).status_code == 404
    assert client.get("/auth/me", headers={"Authorization": f"Bearer {raw}"}).status_code == 200


def test_users_of_one_tenant_share_its_keys(client: FlaskClient, make_user: Any,
                                            make_api_key: Any) -> None:
    """A second user of the same tenant (joined through the services) sees the tenant's keys."""
    from orchestrator.extensions import db
    from orchestrator.services import accounts

    owner = make_user()
    app = client.application
    with app.app_context():
        colleague = accounts.create_user("colleague@example.test", "another long password",
                                         tenant_id=owner["tenant_id"], verified=True)
        tokens = accounts.issue_tokens(colleague)
        db.session.commit()
    make_api_key(owner["user_id"], name="shared")
    listed = client.get("/auth/api-keys",
                        headers={"Authorization": f"Bearer {tokens['access_token']}"}).json
    assert [item["name"] for item in listed] == ["shared"]
