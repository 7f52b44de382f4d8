"""NautilusTrader's BacktestEngine on the same tick file as `mt5bot backtest` (benches/peers/run.py
runs it in a venv of its own with nautilus_trader from PyPI).

Usage: nautilus_backtest.py TICKS_CSV

The file is mt5bot's `timestamp,symbol,bid,ask` with EURUSD and GBPUSD rows. Each symbol gets
NautilusTrader's own EMACross example strategy (its nautilus_trader.examples.strategies.ema_cross,
as published) on 10-tick mid bars aggregated from the quotes, fast 10 and slow 20, on a simulated
netting margin venue. Loading the CSV into QuoteTick objects is not timed; only engine.run() is.
Prints one line: `ticks=N seconds=S peak_rss_mib=M orders=K`.
"""

import resource
import sys
import time
from decimal import Decimal

from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.backtest.engine import BacktestEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.examples.strategies.ema_cross import EMACross
from nautilus_trader.examples.strategies.ema_cross import EMACrossConfig
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import BarType
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.enums import AccountType
from nautilus_trader.model.enums import OmsType
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Money
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity
from nautilus_trader.test_kit.providers import TestInstrumentProvider


def main():
    path = sys.argv[1]
    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR")))
    venue = Venue("SIM")
    engine.add_venue(venue=venue, oms_type=OmsType.NETTING, account_type=AccountType.MARGIN,
                     base_currency=USD, starting_balances=[Money(1_000_000, USD)])
    instruments = {name: TestInstrumentProvider.default_fx_ccy(pair, venue)
                   for name, pair in (("EURUSD", "EUR/USD"), ("GBPUSD", "GBP/USD"))}
    for instrument in instruments.values():
        engine.add_instrument(instrument)
    size = Quantity.from_int(1_000_000)
    ticks = []
    with open(path) as f:
        next(f)
        for line in f:
            ts, name, bid, ask = line.rstrip("\n").split(",")
            secs, _, frac = ts.partition(".")
            ns = int(secs) * 1_000_000_000 + int((frac + "000000000")[:9])
            ticks.append(QuoteTick(instrument_id=instruments[name].id, bid_price=Price.from_str(bid),
                                   ask_price=Price.from_str(ask), bid_size=size, ask_size=size,
                                   ts_event=ns, ts_init=ns))
    engine.add_data(ticks)
    for n, instrument in enumerate(instruments.values()):
        engine.add_strategy(EMACross(EMACrossConfig(
            instrument_id=instrument.id,
            bar_type=BarType.from_str(f"{instrument.id}-10-TICK-MID-INTERNAL"),
            trade_size=Decimal(100_000),
            fast_ema_period=10,
            slow_ema_period=20,
            request_bars=False,
            subscribe_trade_ticks=False,
            order_id_tag=f"{n:03d}",
        )))
    t0 = time.perf_counter()
    engine.run()
    seconds = time.perf_counter() - t0
    orders = len(engine.cache.orders())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"ticks={len(ticks)} seconds={seconds:.3f} peak_rss_mib={peak:.1f} orders={orders}", flush=True)
    engine.dispose()


if __name__ == "__main__":
    main()
