"""ScriptMesh agent: an outbound-only worker that runs whitelisted scripts for the hub."""

__version__ = "0.1.0"
