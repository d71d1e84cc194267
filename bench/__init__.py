"""DFIP pipeline benchmarks against a real Kafka broker (`python -m bench`, see bench/README.md).

Modules, one concern each:

- `bench.cli`         command line (`suite` and `soak`), options and their defaults
- `bench.broker`      the broker (given or private), throw-away topic namespaces
- `bench.feed`        simulator records captured once, produced fast or at a paced rate
- `bench.scrape`      cheap reads of a worker's /metrics and of /proc (RSS)
- `bench.raw`         the raw baseline: aiokafka consumer + orjson into plain dicts
- `bench.pipeline`    `dfip worker` processes consuming a pre-produced topic
- `bench.latency`     produce → /metrics latency at a fixed offered load
- `bench.enterprises` memory with many scored enterprises, and restore time of that table
- `bench.soak`        a long steady run checked against the simulator's oracle
- `bench.report`      medians, tables, the machine description
- `bench.suite`       runs the measurements in one go and prints the report

The older single-purpose scripts (`bench/bench_*.py`) stay runnable as scripts.
"""
