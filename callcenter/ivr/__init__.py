"""The IVR (the plan's auto-attendant, ATDH): flows, their interpreter, and speech."""
