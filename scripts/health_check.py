#!/usr/bin/env python3
"""health_check.py: check URLs (env ``urls``, comma-separated) or, by default, local disk and load.

Prints a JSON report; exits 1 when any check fails.
"""

import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request

# Params arrive as lowercase environment variables, as in the seed examples.
TIMEOUT = float(os.environ.get("timeout_seconds", "5"))  # noqa: SIM112
MIN_FREE_DISK_PCT = float(os.environ.get("min_free_disk_pct", "5"))  # noqa: SIM112


def check_url(url: str) -> dict:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return {"url": url, "ok": False, "error": str(exc)}
    elapsed = round((time.monotonic() - started) * 1000)
    return {"url": url, "ok": 200 <= status < 400, "status": status, "ms": elapsed}


def check_local() -> list:
    usage = shutil.disk_usage("/")
    free_pct = round(usage.free * 100 / usage.total, 1)
    load1, _, _ = os.getloadavg()
    cpus = os.cpu_count() or 1
    return [
        {"check": "disk_free_pct", "value": free_pct, "ok": free_pct >= MIN_FREE_DISK_PCT},
        {"check": "load1_per_cpu", "value": round(load1 / cpus, 2), "ok": load1 / cpus < 4},
    ]


def main() -> int:
    raw = os.environ.get("urls", "")  # noqa: SIM112
    urls = [u.strip() for u in raw.split(",") if u.strip()]
    checks = [check_url(u) for u in urls] if urls else check_local()
    healthy = all(c["ok"] for c in checks)
    print(json.dumps({"healthy": healthy, "checks": checks}, indent=2))
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
