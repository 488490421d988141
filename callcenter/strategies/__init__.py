"""KPM service strategies: rules run every day over customer facts that make agent tasks and
messages (docs/campaigns.md). Sans-IO cores (model, conditions, evaluate, plan); edges (runner,
scheduler, cli)."""
