"""The `tgwatch` command: a group whose subcommands live in ``service.commands``, loaded lazily.

This module is a leaf: it imports click and nothing of the project but its version, so
``tgwatch --help`` starts no HTTP stack, and ``tgwatch status`` imports only the status command.
Each command module builds its own process's composition root (``service.commands.root``).
Short help is kept here so listing the commands imports none of them (click's documented "lazy
loading subcommands" pattern).
"""

from __future__ import annotations

import importlib

import click

from service import __version__

# name -> ("module:attribute", short help). One module per command (or group of subcommands).
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("service.commands.run:run", "Listeners and N workers in one process group."),
    "listen": ("service.commands.listen:listen", "Run the configured live sources."),
    "worker": ("service.commands.worker:worker", "Run non-forking workers (posts, deliveries)."),
    "ingest": ("service.commands.ingest:ingest", "Enqueue posts from files."),
    "posts": ("service.commands.posts:posts", "Show a channel's recent stored posts."),
    "status": ("service.commands.status:status", "Queues, workers, deliveries and channels."),
    "rejected": ("service.commands.status:rejected", "Show input that was set aside."),
    "deliveries": ("service.commands.deliveries:deliveries", "Dead letters: list, redeliver."),
    "backtest": ("service.commands.rules:backtest", "Run rules over saved posts."),
    "rules": ("service.commands.rules:rules", "Check, explain or load a rules file."),
    "subscriptions": (
        "service.commands.subscriptions:subscriptions",
        "Import or export subscriptions as a rules file.",
    ),
    "classify": ("service.commands.enrich:classify", "Language, topics and entities of files."),
    "topics": ("service.commands.enrich:topics", "Train a topic model."),
    "eval": ("service.commands.enrich:eval_cmd", "Evaluate enrichment on a labelled set."),
    "bot": ("service.commands.bot:bot", "Run the subscriber bot alone."),
    "api": ("service.commands.api:api", "Serve the HTTP API."),
    "apikeys": ("service.commands.api:apikeys", "Create, list and revoke API keys."),
    "accounts": ("service.commands.accounts:accounts", "MTProto user accounts: add, list, remove."),
    "secrets": ("service.commands.secrets:secrets", "Re-encrypt stored webhook secrets."),
}


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        path, _ = COMMANDS[cmd_name]
        module_name, attribute = path.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{path} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the commands with the short help kept above, importing none of them."""
        rows = [(name, COMMANDS[name][1]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tgwatch")
def cli() -> None:
    """tgwatch: real-time alerts on Telegram channel posts.

    Configuration comes from TGWATCH_* environment variables (or a .env file); with no
    TGWATCH_REDIS_URL an embedded Redis is started under TGWATCH_DATA_DIR (default ./data).
    """


def main() -> None:
    cli(prog_name="tgwatch")


if __name__ == "__main__":
    main()
