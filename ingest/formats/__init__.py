"""The IIS log formats, one module each (W3C extended, IIS native, NCSA common, HTTP.sys
HTTPERR), with their common base (base.py) and the detection of which one a file holds.
A new format is a `LineParser` subclass here, detected in detect.py and chosen in
iiswatch.ingest.parse."""
