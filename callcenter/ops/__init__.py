"""Operations: the engine's HTTP server for operators' tools (``http.py``), its Prometheus
metrics (``metrics.py``: pure families and counters; ``service.py``: the engine's edge), and the
running engine's pid file and reload signals (``engine_process.py``)."""
