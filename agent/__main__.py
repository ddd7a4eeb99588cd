"""Allow ``python -m agent start ...`` as an alias of ``scriptmesh-agent``."""

from agent.cli import main

if __name__ == "__main__":
    main()
