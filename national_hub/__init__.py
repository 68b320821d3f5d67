"""The national hub (NGSP): registry, tokens, exchange data plane, ledger and reports."""

__version__ = "0.1.0"
__all__ = ["__version__"]
