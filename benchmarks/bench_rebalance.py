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
tables hold, standbys included, to pick its partition's).

And the way a partition *moved* here comes back since warm copies (``agents.warm``): the
process read its changelog as a standby and kept a copy up to its rows, refreshed every
second. The copy is made from the rows as they were ``--lag`` of the partition's inputs
before the end (what the owner applied after the copy's last refresh, before it died),
then brought up to the final rows, all of them read again as the takeover's recovery
reads them (an unchanged row costs a comparison): timed against the restore from the
same final rows. Not in either figure: reading the changelog from Kafka. Usage:

    python benchmarks/bench_rebalance.py [--events FILE --instruments FILE] [--count N]
        [--partitions 4] [--repeat 3] [--lag 2000]
"""

from __future__ import annotations

import time

import orjson
from bench_shards import feed_arguments, shard_feeds

from streams.agents.app import restored_shard
from streams.agents.codec import encode_account
from streams.agents.shard import Shard
from streams.agents.warm import WarmCopy


def best_of(repeat: int, call: object) -> float:
    assert callable(call)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return min(times)


def rows_of(shard: Shard[None]) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """The shard's account and mark rows, by key, as ``account-agents`` writes them."""
    accounts = {a.encode(): encode_account(shard.row(a)) for a in shard.applied}
    marks = {
        f"0:{symbol}".encode(): orjson.dumps(list(shard.mark_row(symbol)))
        for symbol in shard.engine.marks
    }
    return accounts, marks


def main() -> None:
    parser = feed_arguments(__doc__, partitions=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lag", type=int, default=2000, help="inputs the copy is behind")
    args = parser.parse_args()
    instruments, feeds = shard_feeds(args.events, args.instruments, args.count, args.partitions)
    shard: Shard[None] = Shard(0, instruments, summary_interval_ms=args.interval_ms)
    lag = min(args.lag, len(feeds[0]) - 1)
    t = time.perf_counter()
    applied_s = 0.0
    for k, part in enumerate((feeds[0][:-lag], feeds[0][-lag:])):
        for event, obj, source in part:
            shard.push(event, obj, source, None)
        for item in shard.release([], flush=True):
            shard.apply(item)
        applied_s += time.perf_counter() - t
        if k == 0:
            warm_accounts, warm_marks = rows_of(shard)  # the copy's last refresh
        t = time.perf_counter()
    accounts, marks = rows_of(shard)
    account_rows, mark_rows = list(accounts.values()), list(marks.items())
    positions = sum(len(state.positions) for state in shard.engine.accounts.values())
    assert shard.summarizer is not None
    waiting = shard.summarizer.waiting

    def restore() -> Shard[None]:
        return restored_shard(0, instruments, args.interval_ms, account_rows, mark_rows)

    restore_s = best_of(args.repeat, restore)
    take_up_s = best_of(args.repeat, shard.rewind)
    warm_s, replaced = [], 0
    for _ in range(args.repeat):
        copy = WarmCopy(0, instruments, args.interval_ms)
        copy.refresh(warm_accounts, warm_marks)
        t = time.perf_counter()
        replaced = copy.refresh(accounts, marks)
        warm_s.append(time.perf_counter() - t)
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
    print(
        f"moved here: warm copy {args.lag:,} inputs behind brought up to date "
        f"({replaced:,} accounts replaced, {len(accounts):,} rows read again) "
        f"{min(warm_s):.4f} s vs restore {restore_s:.4f} s: {restore_s / min(warm_s):,.1f}x"
    )


if __name__ == "__main__":
    main()
