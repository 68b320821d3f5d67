"""``python -m ngsp`` is the ``ngsp`` command."""

from ngsp.cli import main

main()
