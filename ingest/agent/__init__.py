"""The agent: finds IIS logs, follows them in real time and ships raw lines to a collector."""
