"""The fan-out relay: pushes meant for many consoles, written by a process of their own."""
