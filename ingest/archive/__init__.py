"""The forensic archive: append-only segments, a SHA-256 hash chain, sealed manifests."""
