"""The pure risk engine: no Faust, asyncio, Prometheus, HTTP or clock in here."""
