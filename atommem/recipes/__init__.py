"""One config-driven entry point per pipeline stage (see atommem/cli.py)."""
