"""The administration API (``/api`` on the operations server): tokens with roles, the audit of
every change, releases of flow and strategy files, and the services the API, the CLI and the
console share."""
