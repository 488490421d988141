"""The Asterisk edge: AMI, FastAGI, and the sandbox PBX."""
