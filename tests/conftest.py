"""Shared test settings: a pinned non-UTC time zone, so time-zone bugs show."""

import os
import time

os.environ.setdefault("TZ", "Europe/Paris")
time.tzset()
