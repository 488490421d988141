"""Agents' phones and the SIP edge: identities, registrations, certificates, trunks."""
