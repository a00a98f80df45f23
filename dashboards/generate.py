"""Write the dashboards' JSON into dashboards/json/ (Grafana provisions that folder), or check
that the committed files are what the code generates.

    python -m dashboards.generate            # write
    python -m dashboards.generate --check    # exit 1 and name the stale files if they differ
"""

from __future__ import annotations

import json
import sys
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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        problems = stale()
        for name in problems:
            print(f"{JSON_DIR / name}: differs from the generated dashboard; run python -m dashboards.generate")
        return 1 if problems else 0
    for path in write():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
