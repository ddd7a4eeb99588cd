"""WSGI entry point for gunicorn: ``gunicorn -c orchestrator/gunicorn_conf.py wsgi:app``."""

from orchestrator import create_app

app = create_app()
