"""Reading py-spy's collapsed stacks (``py-spy record --format raw``) for the benchmarks."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def top_frames(
    profile: Path, project_code: tuple[str, ...], *, count: int = 10, elsewhere: str = "elsewhere"
) -> list[tuple[str, float]]:
    """The project's lines (frames in files under ``project_code``) that were innermost on the
    most samples, so the time of the libraries they called counts for them; as shares of all
    samples (idle time is not sampled). Samples with no project frame count as ``elsewhere``."""
    if not profile.exists():
        return []
    totals: Counter[str] = Counter()
    samples = 0
    for line in profile.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        samples += int(n)
        ours = [f for f in stack.split(";") if f.split("(")[-1].startswith(project_code)]
        totals[ours[-1] if ours else elsewhere] += int(n)
    return [(frame, n / samples) for frame, n in totals.most_common(count)] if samples else []
