"""The SIP edge's configuration: its settings, Asterisk's transports and trunks, certificates.

What ``telephony/pbx.py`` writes into Asterisk's configuration for SIP (pure renderers, and blocking
file writers for the CLI), and the settings models ``config.py`` and ``phones/`` share. Nothing
here talks to Asterisk or imports the rest of the engine.
"""
