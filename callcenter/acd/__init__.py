"""The ACD: queues, routing policy, callbacks."""
