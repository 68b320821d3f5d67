"""Structured logs: one JSON object per line, for the hub, the nodes and the gateway.

Log calls pass their data as ``extra={"fields": {...}}``; the formatter merges it into the
line beside the time, level, logger and message. Fields are chosen by the caller, and
none of the project's callers ever log a path as sent, a body or an ID number: an
exchange's line names its path template and its transaction and trace ids.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import orjson

__all__ = ["JsonFormatter", "quiet_libraries", "uvicorn_log_config"]

#: Libraries whose INFO lines carry full URLs (an ID number in a path): kept to warnings.
_CHATTY = ("httpx", "httpcore", "aiohttp.access", "hpack")


def quiet_libraries() -> None:
    """Keep HTTP client libraries from logging request URLs."""
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)


class JsonFormatter(logging.Formatter):
    """Formats a record as a single JSON line."""

    def __init__(self, service: str = "ngsp") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "app": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def uvicorn_log_config(service: str, level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn and the project's loggers, as JSON lines."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": "common.logs.JsonFormatter", "service": service},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "": {"handlers": ["stderr"], "level": level},
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "ngsp": {"handlers": [], "level": level, "propagate": True},
            **{name: {"level": "WARNING"} for name in _CHATTY},
        },
    }
