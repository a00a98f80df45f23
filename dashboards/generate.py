"""Write the dashboards' JSON into dashboards/json/ (Grafana provisions that folder), or check
that the committed files are what the code generates: `cems dashboards generate [--check]`."""

from __future__ import annotations

import json
from pathlib import Path

from .boards import all_dashboards

JSON_DIR = Path(__file__).resolve().parent / "json"


def render_all() -> dict[str, str]:
    """File name -> JSON text, for every dashboard."""
    return {
        f"{board.uid}.json": json.dumps(board.to_json(), indent=2, ensure_ascii=False) + "\n"
        for board in all_dashboards()
    }


def stale(folder: Path = JSON_DIR) -> list[str]:
    """Files that are missing, differ from the generated text, or are no longer generated."""
    wanted = render_all()
    problems = [name for name, text in wanted.items()
                if not (folder / name).is_file() or (folder / name).read_text(encoding="utf-8") != text]  # fmt: skip
    problems += sorted(p.name for p in folder.glob("*.json") if p.name not in wanted)
    return problems


def write(folder: Path = JSON_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    wanted = render_all()
    for old in folder.glob("*.json"):
        if old.name not in wanted:
            old.unlink()
    paths = []
    for name, text in wanted.items():
        (folder / name).write_text(text, encoding="utf-8")
        paths.append(folder / name)
    return paths
