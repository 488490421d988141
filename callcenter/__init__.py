"""callcenter: a telephony call-center engine for securities brokerages, on Asterisk."""

__version__ = "0.1.0"
