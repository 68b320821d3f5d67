"""Path templates: what the ledger records instead of the path as sent.

A path such as ``/citizens/001203004567`` carries a citizen's ID number; the ledger,
logs and metrics must never hold it. Each service's OpenAPI document lists its paths as
templates (``/citizens/{id}``); a request path is recorded as the template it matches.
A path that matches no template is recorded with every segment that could carry an
identifier (any digit, ``@``, or longer than 24 characters) replaced by ``{param}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["PathTemplates", "mask_path"]

_PARAM = re.compile(r"\{[^/{}]+\}")
_SUSPECT = re.compile(r"[0-9@]")
_MAX_PLAIN_SEGMENT = 24
_MAX_PATH = 500


def mask_path(path: str) -> str:
    """Replace every segment that may identify a person with ``{param}``."""
    segments = path.split("/")
    masked = [
        "{param}" if (_SUSPECT.search(s) or len(s) > _MAX_PLAIN_SEGMENT) else s for s in segments
    ]
    result = "/".join(masked)
    return result if len(result) <= _MAX_PATH else result[:_MAX_PATH]


class PathTemplates:
    """Matches request paths against a service's OpenAPI path templates."""

    __slots__ = ("_exact", "_patterns")

    def __init__(self, templates: Iterable[str]) -> None:
        self._exact: set[str] = set()
        patterns: list[tuple[int, re.Pattern[str], str]] = []
        for template in templates:
            if not template.startswith("/"):
                template = "/" + template
            params = _PARAM.findall(template)
            if not params:
                self._exact.add(template)
                continue
            parts: list[str] = []
            pos = 0
            for m in _PARAM.finditer(template):
                parts.append(re.escape(template[pos : m.start()]))
                parts.append("[^/]+")
                pos = m.end()
            parts.append(re.escape(template[pos:]))
            regex = "".join(parts)
            patterns.append((len(params), re.compile(regex + r"\Z"), template))
        # Fewer parameters first: ``/citizens/search`` wins over ``/citizens/{id}``.
        patterns.sort(key=lambda item: item[0])
        self._patterns = [(p, t) for _, p, t in patterns]

    @classmethod
    def from_openapi(cls, document: Mapping[str, Any] | None) -> PathTemplates:
        """Build from an OpenAPI document's ``paths`` (none gives an empty matcher)."""
        if not document:
            return cls(())
        paths = document.get("paths")
        if not isinstance(paths, Mapping):
            return cls(())
        return cls(str(p) for p in paths)

    def template_for(self, path: str) -> str:
        """The template ``path`` matches, or the path with identifiers masked."""
        if not path.startswith("/"):
            path = "/" + path
        if path in self._exact:
            return path
        for pattern, template in self._patterns:
            if pattern.match(path):
                return template
        return mask_path(path)
