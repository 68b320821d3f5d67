"""The country's data and rules: the 2020 and 2025 rosters, synthetic citizens and their
ID-number rules, and the catalogue of administrative procedures.

Bottom floor: it imports nothing of the project's other packages.
"""

__all__: list[str] = []
