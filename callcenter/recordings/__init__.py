"""Recordings fit for a broker: sealed at rest with the site key, kept per kind, deleted only
after their retention and never under legal hold, found by customer, agent, date or order, and
every playback logged (docs/recordings.md)."""
