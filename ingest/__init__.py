"""Reading IIS logs: find files, read lines, parse them, enrich to ECS, sink them."""
