"""The dialer: calls for tasks and campaigns, preview and progressive, keeping every rule
(do-not-call, opt-outs, calling windows, attempts) before every call."""
