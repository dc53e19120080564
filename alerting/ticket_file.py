"""A `command` destination that needs nothing: each alert (JSON on stdin) becomes a file
`<dir>/<alert_id>.json`, and its path is printed as the ticket reference. Used by the demo
where no ticket system is installed; also a simple drop folder for other tooling.

    argv = ["python", "-m", "iiswatch.alerting.ticket_file", "/var/spool/iiswatch-tickets"]
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m iiswatch.alerting.ticket_file DIR", file=sys.stderr)
        return 2
    alert = json.load(sys.stdin)
    folder = Path(argv[0])
    folder.mkdir(parents=True, exist_ok=True)
    # the id is ours (a hash), but the file name must never be steerable by log content
    name = re.sub(r"[^A-Za-z0-9_-]", "_", str(alert.get("alert_id", "alert")))[:80]
    target = folder / f"{name}.json"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(alert, indent=2, sort_keys=True))
    os.replace(tmp, target)  # a retried delivery rewrites the same ticket, never a second one
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
