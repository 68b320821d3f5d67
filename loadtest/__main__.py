"""``python -m loadtest`` is ``ngsp load``."""

import typer

from loadtest.cli import load


def main() -> None:
    typer.run(load)


# Guarded: the generator's worker processes are spawned, and must not run the command.
if __name__ == "__main__":
    main()
