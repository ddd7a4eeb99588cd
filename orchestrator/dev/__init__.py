"""``scriptmesh dev``: one command that runs a whole hub and a local agent on one machine."""
