"""Rebuild the README's results gallery from finished scenario runs.

    python docs/make_gallery.py SCENARIO=RUN_DIR[:quick] [SCENARIO=RUN_DIR[:quick] ...]

For each scenario it copies one figure the scenario made (its own figure if it has one, else the learning
curves) to ``docs/gallery/<scenario>.png`` and takes the first table of the run's ``summary.md``; the README
section between ``<!-- gallery:begin -->`` and ``<!-- gallery:end -->`` is replaced by those figures, tables and
the command that regenerates each run (read from the run's ``config.json``). Scenarios not named keep their
current entry.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GALLERY = ROOT / "docs" / "gallery"
GENERIC = ("learning_curves.png", "per_client_kpis.png", "per_client_return.png", "heterogeneity_sweep.png")
BEGIN, END = "<!-- gallery:begin -->", "<!-- gallery:end -->"


def first_table(md: str, max_rows: int = 12) -> str:
    lines, out = md.splitlines(), []
    for line in lines:
        if line.startswith("|"):
            out.append(line)
        elif out:
            break
    return "\n".join(out[: max_rows + 2])


def command(run: Path, scenario: str, quick: bool) -> str:
    cfg = json.loads((run / "config.json").read_text()).get("experiment", {})
    seed = cfg.get("seed", 0)
    return f"frl run {scenario}" + (" --quick" if quick else "") + (f" --seed {seed}" if seed else "")


def entry(scenario: str, run: Path, quick: bool = False) -> str:
    GALLERY.mkdir(parents=True, exist_ok=True)
    own = sorted(p for p in run.glob("*.png") if p.name not in GENERIC)  # the scenario's own figure first
    fig = next(iter(own), None) or next((run / f for f in GENERIC if (run / f).exists()), None)
    parts = [f"### `{scenario}`", "", f"`{command(run, scenario, quick)}`", ""]
    if fig is not None:
        shutil.copyfile(fig, GALLERY / f"{scenario}.png")
        parts += [f"![{scenario}](docs/gallery/{scenario}.png)", ""]
    parts += [first_table((run / "summary.md").read_text()), ""]
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    readme = ROOT / "README.md"
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        print(f"README.md has no {BEGIN} ... {END} section", file=sys.stderr)
        return 2
    head, rest = text.split(BEGIN, 1)
    body, tail = rest.split(END, 1)
    entries = {m.group(1): m.group(0) for m in re.finditer(r"### `([^`]+)`.*?(?=### `|\Z)", body, re.S)}
    for arg in argv:
        scenario, _, run = arg.partition("=")
        quick = run.endswith(":quick")
        run = run.removesuffix(":quick")
        if not run or not (Path(run) / "summary.md").exists():
            print(f"{arg!r}: expected SCENARIO=RUN_DIR with a summary.md", file=sys.stderr)
            return 2
        entries[scenario] = entry(scenario, Path(run), quick)
    new_body = "\n" + "\n".join(entries[k].rstrip() + "\n" for k in sorted(entries)) + "\n"
    readme.write_text(head + BEGIN + new_body + END + tail)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
