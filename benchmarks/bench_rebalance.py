"""What a rebalance costs an account partition its process keeps. Faust's rebalances
are eager: every partition is revoked, most come back to the process that had them.
Before, each came back rebuilt from the changelog tables' rows (decode every row, restore
the engine, re-evaluate every account) and lost the rankings waiting for the desk's
lights; now the shard put aside at the revocation is taken up again (``Shard.rewind``:
what it buffered is dropped and delivered again) when no input moved past it.

One partition's shard is fed its share of an events file (as ``bench_shards.py`` splits
it) and applied; its rows are encoded as ``account-agents`` writes them; then both ways
back are timed on it, in one run (best of ``--repeat``). The restore is given only this
partition's rows: a lower bound (a process decodes the rows of every partition its
tables hold, standbys included, to pick its partition's). Usage:

    python benchmarks/bench_rebalance.py [--events FILE --instruments FILE] [--count N]
        [--partitions 4] [--repeat 3]
"""

from __future__ import annotations

import time

import orjson
from bench_shards import feed_arguments, shard_feeds

from streams.agents.app import restored_shard
from streams.agents.codec import encode_account
from streams.agents.shard import Shard


def best_of(repeat: int, call: object) -> float:
    assert callable(call)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = feed_arguments(__doc__, partitions=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    instruments, feeds = shard_feeds(args.events, args.instruments, args.count, args.partitions)
    shard: Shard[None] = Shard(0, instruments, summary_interval_ms=args.interval_ms)
    t = time.perf_counter()
    for event, obj, source in feeds[0]:
        shard.push(event, obj, source, None)
    for item in shard.release([], flush=True):
        shard.apply(item)
    applied_s = time.perf_counter() - t
    account_rows = [encode_account(shard.row(account)) for account in shard.applied]
    mark_rows = [
        (f"0:{symbol}".encode(), orjson.dumps(list(shard.mark_row(symbol))))
        for symbol in shard.engine.marks
    ]
    positions = sum(len(state.positions) for state in shard.engine.accounts.values())
    assert shard.summarizer is not None
    waiting = shard.summarizer.waiting

    def restore() -> Shard[None]:
        return restored_shard(0, instruments, args.interval_ms, account_rows, mark_rows)

    restore_s = best_of(args.repeat, restore)
    take_up_s = best_of(args.repeat, shard.rewind)
    restored = restore()
    assert restored.summarizer is not None
    print(
        f"partition 0 of {args.partitions}: {len(feeds[0]):,} events applied in "
        f"{applied_s:.1f} s; {len(account_rows):,} accounts, {positions:,} positions, "
        f"{sum(map(len, account_rows)) / 1e6:.1f} MB of rows"
    )
    print(f"{'back after a rebalance':<34} {'seconds':>9}  rankings waiting for lights")
    lost = restored.summarizer.waiting
    print(f"{'restored from the rows (before)':<34} {restore_s:>9.4f}  {lost:,}")
    print(f"{'taken up again (rewind)':<34} {take_up_s:>9.4f}  {waiting:,}")
    print(f"restore / take-up: {restore_s / take_up_s:,.0f}x")


if __name__ == "__main__":
    main()
