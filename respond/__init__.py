"""Response on the IIS host: actions (block an address, quarantine a file) recorded in
Elasticsearch, handed by the collector to the host's agent, applied only when the agent's
config allows them, and their results recorded and told to the incident's ticket."""
