"""Benchmarks outside the package (see bench/README.md); ``python -m bench.<name>`` runs one."""
