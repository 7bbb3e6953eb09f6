"""Small pieces the benchmark scripts share."""

from __future__ import annotations

import argparse
from collections.abc import Iterable


def parse_only(parser: argparse.ArgumentParser, value: str, known: Iterable[str]) -> list[str]:
    """The comma-separated names of ``--only`` (empty: all); an unknown one exits with status 2 and one line
    naming it and the allowed names."""
    allowed = sorted(set(known))
    only = [s.strip() for s in value.split(",") if s.strip()]
    bad = [s for s in only if s not in allowed]
    if bad:
        parser.exit(2, f"{parser.prog}: error: unknown agent(s) {', '.join(bad)}; allowed: {', '.join(allowed)}\n")
    return only
