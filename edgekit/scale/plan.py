"""The shard plan: which examples go together, decided by the data and the recipe's batch size alone.

Every executor runs the same plan, so a batch holds the same examples whichever worker runs it and every number
equals the serial run's. A shard is SHARD_BATCHES consecutive batches (the unit of work sent to a worker, cached
and resumed); batches start at the shard's first example. With groups (ARC: the task of each example) a shard
holds whole runs of one group, so the augmented copies of a task are never split between workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SHARD_BATCHES = 4
MAX_SHARDS = 1_000_000


@dataclass(frozen=True)
class Shard:
    index: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    def batches(self, batch: int) -> list[tuple[int, int]]:
        """(start, stop) of each batch, relative to the shard."""
        return [(i, min(i + batch, self.size)) for i in range(0, self.size, batch)]


def plan_shards(n: int, batch: int, groups: Sequence[object] | None = None) -> list[Shard]:
    """Consecutive shards covering examples 0..n-1 exactly once. Without groups each shard is SHARD_BATCHES
    batches (the last one shorter), so batches fall where a single loop over the data puts them; with groups a
    shard ends only where the group changes, once it holds at least SHARD_BATCHES batches' worth."""
    if n < 0 or batch < 1:
        raise ValueError(f"bad plan: {n} examples, batch {batch}")
    size = SHARD_BATCHES * batch
    if groups is None:
        cuts = list(range(0, n, size)) + [n]
    else:
        if len(groups) != n:
            raise ValueError(f"{len(groups)} groups for {n} examples")
        cuts = [0]
        for i in range(1, n):
            if groups[i] != groups[i - 1] and i - cuts[-1] >= size:
                cuts.append(i)
        cuts.append(n)
    shards = [Shard(k, a, b) for k, (a, b) in enumerate(zip(cuts, cuts[1:])) if b > a]
    if len(shards) > MAX_SHARDS:
        raise ValueError(f"{len(shards)} shards: raise validate.batch_size")
    return shards
