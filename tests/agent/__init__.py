"""Agent tests (package so module names never clash with other test folders)."""
