"""Run every ``bench_*.py`` module in turn, each in its own process: ``make bench``.

``python -m tests.benchmarks`` runs them on the embedded defaults (SQLite and
an embedded Redis, or ``DATABASE_URL`` / ``REDIS_URL`` when set).
``--server`` runs them again on PostgreSQL and a Redis server: each module gets
a throwaway database (created, then dropped) and its Redis keys are deleted
afterwards. ``-k WORD`` (repeatable) runs only the modules whose name contains WORD.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.e2e.proc_helpers import REPO, process_env

PACKAGE = Path(__file__).resolve().parent
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432"
#: Redis db 1: the test suite uses db 0 of the same server.
DEFAULT_REDIS = "redis://127.0.0.1:6379/1"
BENCH_DATABASE = "scriptmesh_bench"
#: Key patterns a hub writes (RQ, ScriptMesh, Flask-Limiter); deleted after a server run.
HUB_KEY_PATTERNS = ("rq:*", "scriptmesh*", "LIMITS:*", "LIMITER*")


def redact(url: str) -> str:
    """``url`` without its password (it is printed)."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def bench_modules(only: list[str] | None) -> list[str]:
    """The ``bench_*`` modules, sorted; with ``only``, those containing one of its words."""
    names = sorted(path.stem for path in PACKAGE.glob("bench_*.py"))
    return [name for name in names if not only or any(word in name for word in only)]


def run_module(name: str, env: Mapping[str, str]) -> int:
    """Run one benchmark module in a fresh interpreter; its output goes straight through."""
    print(f"\n## {name}", flush=True)
    started = time.monotonic()
    code = subprocess.call([sys.executable, "-m", f"tests.benchmarks.{name}"],
                           env=process_env(env), cwd=str(REPO))
    print(f"({name}: exit {code}, {time.monotonic() - started:.0f} s)", flush=True)
    return code


@contextmanager
def server_backend(postgres: str, redis_url: str) -> Iterator[dict[str, str]]:
    """A throwaway PostgreSQL database and a cleaned Redis db for one module's run."""
    import psycopg
    import redis

    admin_url = f"{postgres.rstrip('/')}/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {BENCH_DATABASE}")
    database_url = f"{postgres.rstrip('/')}/{BENCH_DATABASE}"
    try:
        yield {"DATABASE_URL": database_url, "REDIS_URL": redis_url,
               "BENCH_DATABASE_URL": database_url}
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
        client = redis.Redis.from_url(redis_url)
        for pattern in HUB_KEY_PATTERNS:
            for key in client.scan_iter(match=pattern, count=1000):
                client.delete(key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__)
    parser.add_argument("-k", dest="only", action="append",
                        help="only modules whose name contains this (repeatable)")
    parser.add_argument("--server", action="store_true",
                        help="also run on PostgreSQL and a Redis server")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES,
                        help=f"PostgreSQL server URL, no database [{DEFAULT_POSTGRES}]")
    parser.add_argument("--redis", default=DEFAULT_REDIS, help=f"Redis URL [{DEFAULT_REDIS}]")
    parser.add_argument("--server-only", action="store_true",
                        help="run only on PostgreSQL and the Redis server")
    args = parser.parse_args(argv)
    modules = bench_modules(args.only)
    failed = []
    if not args.server_only:
        print("# Benchmarks: embedded defaults", flush=True)
        failed += [name for name in modules if run_module(name, os.environ)]
    if args.server or args.server_only:
        print(f"\n# Benchmarks: PostgreSQL ({redact(args.postgres)}) + Redis "
              f"({redact(args.redis)})", flush=True)
        for name in modules:
            with server_backend(args.postgres, args.redis) as extra:
                if run_module(name, {**os.environ, **extra}):
                    failed.append(f"{name} (server)")
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
