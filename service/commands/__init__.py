"""Subcommands of `tgwatch` that live outside service/cli.py, one module per group."""
