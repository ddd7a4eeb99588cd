"""Re-encrypt every stored secret under the current (first) ``ENCRYPTION_KEY`` entry.

Rotation: put the new key first (``ENCRYPTION_KEY=new:<key>,old:<key>``),
run ``scriptmesh keys rotate``, then drop the old key once it reports
nothing left under it. Each row is re-encrypted in place; the associated data
stays the same, so secrets keep their binding to their row and field.
"""

from __future__ import annotations

from collections import Counter

from orchestrator.extensions import db
from orchestrator.models import GlobalIntegration, Integration, WebhookSecret
from orchestrator.services import signing
from orchestrator.services.crypto import current_key_id, reencrypt_secret
from orchestrator.services.integrations.manage import secret_aad


def rotate_all_secrets() -> dict[str, int]:
    """Re-encrypt what is not under the current key; counts of ``rotated`` and ``current``.

    :raises SecretUnreadable: when a secret uses a key no longer configured.
    """
    counts: Counter[str] = Counter()
    for model in (Integration, GlobalIntegration):
        for row in db.session.execute(db.select(model)).scalars():
            stored = dict(row.secrets or {})
            for name, envelope in stored.items():
                fresh = reencrypt_secret(envelope, secret_aad(row.id, name))
                counts["rotated" if fresh else "current"] += 1
                stored[name] = fresh or envelope
            row.secrets = stored
    for secret_row in db.session.execute(db.select(WebhookSecret)).scalars():
        fresh = reencrypt_secret(secret_row.secret, signing.secret_aad(secret_row.tenant_id))
        counts["rotated" if fresh else "current"] += 1
        if fresh:
            secret_row.secret = fresh
    db.session.commit()
    return {"rotated": counts["rotated"], "current": counts["current"],
            "key_id": current_key_id()}  # type: ignore[dict-item]


def secrets_by_key() -> dict[str, int]:
    """How many stored secrets each key id encrypts (to know when an old key can go)."""
    counts: Counter[str] = Counter()
    for model in (Integration, GlobalIntegration):
        for secrets in db.session.execute(db.select(model.secrets)).scalars():
            counts.update(envelope.get("kid", "?") for envelope in (secrets or {}).values())
    for envelope in db.session.execute(db.select(WebhookSecret.secret)).scalars():
        counts[envelope.get("kid", "?")] += 1
    return dict(counts)
