"""``python -m common.errors [PATH]``: write the errors page to PATH, or print it."""

from __future__ import annotations

import sys
from pathlib import Path

from common.errors._docs import render_docs


def main(argv: list[str]) -> int:
    """Write ``docs/errors.md`` (or the path given), or print the page without one."""
    text = render_docs()
    if len(argv) > 1:
        Path(argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
