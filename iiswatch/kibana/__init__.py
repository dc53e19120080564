"""Kibana content generated from our mappings and rules: data views, a saved search per
rule, traffic and detection dashboards (`iiswatch kibana export`)."""
