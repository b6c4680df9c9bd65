"""Summarise a py-spy collapsed-stack profile: ``python -m benchmarks.profile FILE [N]``.

Prints the share of samples in which each function appears (inclusive) and the share of
samples whose innermost frame is it (exclusive), top N of each.
"""

from __future__ import annotations

import sys
from collections import Counter


def summarise(path: str, top: int = 25) -> str:
    inclusive: Counter[str] = Counter()
    exclusive: Counter[str] = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            n = int(count)
            total += n
            frames = stack.split(";")
            for frame in set(frames):
                inclusive[frame] += n
            exclusive[frames[-1]] += n
    out = [f"{path}: {total} samples", "", "inclusive:"]
    out += [f"  {c / total:6.1%}  {f}" for f, c in inclusive.most_common(top)]
    out += ["", "exclusive:"]
    out += [f"  {c / total:6.1%}  {f}" for f, c in exclusive.most_common(top)]
    return "\n".join(out)


if __name__ == "__main__":
    print(summarise(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25))
