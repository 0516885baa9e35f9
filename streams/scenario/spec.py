"""What a simulated market is made of: symbols, population, crash path, venue rules.

Every number that shapes a scenario lives here, so a scenario is named by its spec and
its seed: the same spec gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

OCT_10_2025_2050_UTC_MS = 1_760_129_400_000  # ten minutes before the October 2025 crash


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    symbol: str
    start_price: float
    crash_depth: float  # fraction lost at the bottom of the crash
    beta: float  # correlation of its noise with the market factor
    volatility: float  # noise per sqrt(minute) in calm, as a fraction of the price
    price_dp: int
    qty_dp: int
    book_share: float  # quote per book level in calm, as a share of its open interest
    weight: float  # share of the opening trades


BTC = SymbolSpec("BTCUSDT", 60_000.0, 0.15, 1.0, 0.0008, 1, 4, 0.002, 5.0)
ETH = SymbolSpec("ETHUSDT", 3_000.0, 0.22, 0.9, 0.0010, 2, 3, 0.0015, 3.0)
SOL = SymbolSpec("SOLUSDT", 150.0, 0.30, 0.8, 0.0013, 3, 2, 0.001, 2.0)
XRP = SymbolSpec("XRPUSDT", 2.5, 0.40, 0.7, 0.0016, 4, 1, 0.0007, 1.0)
ADA = SymbolSpec("ADAUSDT", 0.8, 0.40, 0.7, 0.0018, 4, 0, 0.0005, 1.0)
ALL_SYMBOLS = (BTC, ETH, SOL, XRP, ADA)


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    """A crash like 10 October 2025: BTC -15% and alts -40% within 30 minutes, then a
    partial rebound; marks every 100 ms per symbol inside the crash window."""

    seed: int = 7
    accounts: int = 10_000
    symbols: tuple[SymbolSpec, ...] = ALL_SYMBOLS
    start_ms: int = OCT_10_2025_2050_UTC_MS
    minutes: float = 60.0
    crash_start_min: float = 10.0
    crash_minutes: float = 30.0
    rebound: float = 0.4  # share of the fall recovered by the end
    calm_mark_ms: int = 1_000
    crash_mark_ms: int = 100
    depth_every_marks: int = 10  # a book snapshot every n mark steps
    fund_snapshot_ms: int = 10_000
    fund: str = "USDT-M"
    fund_per_account: float = 1.0  # initial insurance fund per account: a thin one
    funding_interval_ms: int = 3_600_000  # hourly funding, on the hour
    funding_rate: float = 0.0001  # paid by longs to shorts at each funding time
    isolated_share: float = 0.25
    trades_per_account: float = 1.5
    opening_ms: int = 60_000  # the opening trades are spread over the first minute
    max_leverage: float = 60.0
    liquidation_delay_ms: int = 500  # the venue's liquidation engine lags the marks
    maker_wallet: float = 1e9  # the book's market maker: takes the other side of closes
    bad_lines: bool = False  # malformed lines and a duplicate, for the dead-letter path
    # the settlement currency's units: wallets, fees, funding and the fund are drawn in
    # USD and multiplied by ``money_scale`` (a coin: 1 / its price), written to
    # ``money_dp`` places (an inverse book in BTC: ``streams.scenario.inverse_book``)
    money_scale: float = 1.0
    money_dp: int = 2

    @property
    def crash_end_min(self) -> float:
        return self.crash_start_min + self.crash_minutes

    def scaled(self, accounts: int) -> ScenarioSpec:
        return replace(self, accounts=accounts)


BUNDLED = ScenarioSpec(
    accounts=400,
    symbols=(BTC, ETH, SOL, XRP),
    minutes=12.0,
    crash_start_min=2.0,
    crash_minutes=4.0,
    fund_per_account=5.0,
    bad_lines=True,
)
"""The small scenario shipped in ``streams/data/cascade.jsonl`` for ``demo`` and tests."""
