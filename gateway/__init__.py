"""The gateway: the platform's public side, where apps submit administrative procedures."""

__all__: list[str] = []
