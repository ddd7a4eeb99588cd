"""The ``scriptmesh`` command line: a light HTTP client of the hub (no Flask, no SQLAlchemy)."""
