"""The hub's ledger: one hash-chained row per exchange.

- ``row``: ``LedgerRow``, the one definition of a row's fields; the table, the hash
  recipes, the inserts and the API's schema are derived from it.
- ``chain``: the hash recipes, by version.
- ``writer``: ``LedgerWriter``, which group-commits rows, chain heads, dossier reports
  and the statistics rollups.
- ``verify``: ``verify_ledger``, behind ``ngsp ledger verify``.

Import from the module that defines a name: ``models`` derives the ledger table from
``row`` and ``writer`` needs ``models``, so this package imports none of them itself.
"""
