"""iiswatch: a detection pipeline for Microsoft IIS web servers on Elasticsearch."""

__version__ = "0.1.0"
