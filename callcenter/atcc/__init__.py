"""ATCC, the resource controller: the live model of channels and calls, and its edge to AMI."""
