"""The collector: receives agent batches, archives the raw bytes, and indexes the events."""
