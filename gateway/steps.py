"""Rendering a procedure's steps for one dossier: paths and bodies with their placeholders."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from country.procedures import PLACEHOLDER, Step

__all__ = ["MissingValue", "RenderedStep", "render_step"]


class MissingValue(KeyError):
    """A placeholder whose value is not known (an earlier step's answer lacked the field)."""


@dataclass(frozen=True, slots=True)
class RenderedStep:
    id: str
    provider: str
    service: str
    method: str
    path: str
    body: dict[str, Any] | None


def _lookup(name: str, values: Mapping[str, str], outputs: Mapping[str, Any]) -> Any:
    if "." in name:
        step, field = name.split(".", 1)
        answer = outputs.get(step)
        if not isinstance(answer, Mapping) or field not in answer:
            raise MissingValue(name)
        return answer[field]
    if name not in values:
        raise MissingValue(name)
    return values[name]


def render_step(
    step: Step, *, values: Mapping[str, str], outputs: Mapping[str, Any], province: str
) -> RenderedStep:
    """The step with every placeholder filled in for this dossier."""
    scope = {**values, "province": province, "province_code": province.removeprefix("P")}

    def fill(text: str, *, for_path: bool) -> str:
        def one(match: Any) -> str:
            value = str(_lookup(match.group(1), scope, outputs))
            return quote(value, safe="") if for_path else value

        return PLACEHOLDER.sub(one, text)

    body: dict[str, Any] | None = None
    if step.body is not None:
        body = {}
        for key, template in step.body.items():
            if isinstance(template, str):
                whole = PLACEHOLDER.fullmatch(template)
                if whole:
                    try:
                        body[key] = _lookup(whole.group(1), scope, outputs)
                    except MissingValue:
                        if "." in whole.group(1):
                            raise
                        continue  # an optional field the applicant left out
                else:
                    body[key] = fill(template, for_path=False)
            else:
                body[key] = template
    provider = fill(step.provider, for_path=False)
    return RenderedStep(
        id=step.id,
        provider=provider,
        service=step.service,
        method=step.method,
        path=fill(step.path, for_path=True),
        body=body,
    )
