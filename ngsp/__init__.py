"""The ``ngsp`` command: every service, the simulation and the load tool behind one line.

Top floor: it wires the services together (``ngsp up``); nothing imports it.
"""

__all__: list[str] = []
