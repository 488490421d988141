"""Agent seats: the seat state machine, the console server, the supervisor."""
