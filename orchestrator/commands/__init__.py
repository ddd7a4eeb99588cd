"""``scriptmesh`` sub-commands, one module per area; ``orchestrator.cli`` adds them."""
