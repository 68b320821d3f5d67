"""``docs/errors.md``, generated from the catalogue."""

from __future__ import annotations

import orjson

from common.contract import PROBLEM_CONTENT_TYPE
from common.errors._catalogue import SECTIONS, Problem
from common.errors._errors import NotGranted

__all__ = ["DOCS_PATH", "REGENERATE", "render_docs"]

#: Where the page lives, from the repository's root.
DOCS_PATH = "docs/errors.md"
#: The command that writes it.
REGENERATE = f"uv run python -m common.errors {DOCS_PATH}"


def _statuses(problem: Problem) -> str:
    others = problem.other_statuses
    if isinstance(others, range) and others:
        return f"{min(problem.status, others[0])}–{max(problem.status, others[-1])}"
    return ", ".join(str(s) for s in sorted({problem.status, *others}))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_docs() -> str:
    """The page: every code, its status, its ledger outcome and what it means."""
    example = NotGranted("P01 holds no grant for DANCU/population")
    body = orjson.dumps(orjson.loads(example.body()), option=orjson.OPT_INDENT_2).decode()
    lines = [
        "# Errors",
        "",
        "<!-- Generated from the catalogue in common/errors/_catalogue.py: edit it, not",
        f"this page, and regenerate the page with `{REGENERATE}`. -->",
        "",
        f"Every answer a service makes itself is `{PROBLEM_CONTENT_TYPE}` (RFC 9457) with",
        "one extra member, `code`: a stable identifier that clients branch on. The `code` and",
        "its status do not change between releases; `title` and `detail` are for people and",
        "may. Some answers add members of their own (`errors`, `field`), named below.",
        "",
        "```json",
        body,
        "```",
        "",
        "**Ledger outcome** is what the hub's ledger records (its `outcome` column) when the",
        "hub refuses a request with the code. `—`: the hub records no refusal of its own with",
        "the code; when a provider answers an exchange with it, the ledger records",
        "`client_error` (4xx) or `provider_error` (5xx).",
    ]
    for section in SECTIONS:
        lines += [
            "",
            f"## {section.title}",
            "",
            section.intro,
            "",
            "| code | status | ledger outcome | title | meaning |",
            "|---|---|---|---|---|",
        ]
        for p in section.problems:
            outcome = f"`{p.outcome}`" if p.outcome is not None else "—"
            lines.append(
                f"| `{p.code}` | {_statuses(p)} | {outcome} | {_cell(p.title)} "
                f"| {_cell(p.meaning)} |"
            )
    return "\n".join(lines) + "\n"
