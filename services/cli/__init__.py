"""``dag-service``: the command line. The Typer ``app`` (``typer_app``, with the error reporting
every command shares) gets the engine commands (``engine_commands``) and then the client commands
(``client_commands``), in the order ``--help`` lists them; ``main`` is the console script."""

from services.cli import client_commands, engine_commands, graph_command
from services.cli.typer_app import app, main

for _command in (*engine_commands.COMMANDS, graph_command.graph, *client_commands.COMMANDS):
    app.command()(_command)

__all__ = ["app", "main"]
