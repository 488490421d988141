"""The brokerage back office: the interface the IVR and console use, and the embedded sandbox."""
