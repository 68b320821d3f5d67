"""The kit every service uses: wire contract, problems, edge limits, server protocol,
HTTP/1.1 client, database helpers, logs, the credentials file and the hub client.

Bottom floor: it imports nothing of the project's other packages.
"""

__all__: list[str] = []
