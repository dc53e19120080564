"""Where the shared conformance corpus lives: `../shared/conformance/iis` beside the repository
(as on developer machines and in CI), or `$IISWATCH_CONFORMANCE_DIR`."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(
    os.environ.get("IISWATCH_CONFORMANCE_DIR") or REPO.parent / "shared" / "conformance" / "iis"
)
# The per-file tables in docs/conformance.md are rewritten only on request, so a test run
# never changes tracked files.
WRITE_DOC = os.environ.get("IISWATCH_REGEN_GOLDEN") == "1"
