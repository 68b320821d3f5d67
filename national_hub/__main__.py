"""``python -m national_hub`` is the ``ngsp`` command."""

from national_hub.cli import main

main()
