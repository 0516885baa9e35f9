"""Synthetic market scenarios: ``spec`` (what a scenario is made of), ``market`` (prices
and books), ``venue`` (liquidation, insurance fund, ADL), ``simulate`` (the events).

The bundled cascade ``streams/data/cascade.jsonl`` is ``adl-monitor simulate --bundled
--out streams/data/cascade.jsonl`` (same spec and seed, same bytes)."""
