"""The ``fermion`` command: a thin entry point over the library's layers.

Each subcommand lives next to the code it drives and is imported only when invoked,
so ``fermion --help`` stays fast and a missing optional extra breaks only its command.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

__all__ = ["main"]

# name -> "module:attribute" of a click.Command. Add a line to register a command.
_COMMANDS: dict[str, str] = {
    "check": "fermion.check._cli:check_command",
    "advise": "fermion.measure._cli:advise_command",
    "bench": "fermion.measure._cli:bench_command",
    "example": "fermion.teach._example:example_command",
    "stress": "fermion.teach._stress_cli:stress_command",
    "tour": "fermion.teach.tour._cli:tour_command",
}
_DEMOS: dict[str, str] = {
    "deadlock": "fermion.teach._deadlock_demo:deadlock_demo",
    "race": "fermion.teach._race_demo:race_demo",
}


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            module_name, attr = self._lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self._lazy[cmd_name]} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=_LazyGroup, lazy=_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(package_name="fermion")
def main() -> None:
    """fermion: run Python work concurrently without fear."""


@main.group(cls=_LazyGroup, lazy=_DEMOS)
def demo() -> None:
    """Short demonstrations of the classic hazards and how fermion reports them."""
