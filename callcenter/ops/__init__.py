"""Operations: the engine's HTTP server for operators' tools (``http.py``), its Prometheus
metrics (``metrics.py``: pure families and counters; ``service.py``: the engine's edge)."""
