"""Tests of the tgwatch subcommands."""
