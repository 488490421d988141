"""Tasks: work for agents about one customer (a strategy's match, a promised call-back, a
campaign's call), their life (``state.py``) and their rows (``store.py``)."""
