"""`iiswatch retention` against the real node: a dry run deletes nothing; --apply deletes
the expired monthly index and the old dead letters, and leaves everything newer alone."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

from elasticsearch import Elasticsearch

from iiswatch.config import RetentionSettings
from iiswatch.elastic.indices import DEADLETTER_INDEX
from iiswatch.elastic.retention import apply, plan

CLI = [sys.executable, "-m", "iiswatch.cli.main"]


def test_dry_run_then_apply(admin_es: Elasticsearch, test_month: date, host_name: str) -> None:
    old_index = f"iis-access-{test_month:%Y.%m}"
    event = {"@timestamp": f"{test_month}T00:00:00Z", "host": {"name": host_name}}
    admin_es.index(index=old_index, document=event, refresh=True)
    now = datetime.now(UTC)
    old_letter = {"@timestamp": "2001-01-01T00:00:00Z", "host": {"name": host_name},
                  "event": {"dataset": "iiswatch.deadletter", "original": "x"}}  # fmt: skip
    new_letter = old_letter | {"@timestamp": now.isoformat()}
    for doc in (old_letter, new_letter):
        admin_es.index(index=DEADLETTER_INDEX, document=doc, refresh=True)
    current = f"iis-access-{now:%Y.%m}"
    if not admin_es.indices.exists(index=current):
        admin_es.indices.create(index=current)

    # the CLI's dry run lists the old index and deletes nothing
    done = subprocess.run([*CLI, "retention", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["applied"] is False and report["deleted"] == 0
    assert old_index in [a["target"] for a in report["actions"]]
    assert admin_es.indices.exists(index=old_index)

    ages = RetentionSettings(
        logs=timedelta(days=365), deadletter=timedelta(days=3650), state=timedelta(days=30)
    )
    actions = [a for a in plan(admin_es, ages) if a.target in (old_index, "iiswatch-deadletter*")]
    assert [a.kind for a in actions] == ["index", "documents"]
    apply(admin_es, actions)
    assert not admin_es.indices.exists(index=old_index)
    assert admin_es.indices.exists(index=current)
    admin_es.indices.refresh(index=DEADLETTER_INDEX)
    left = admin_es.search(index=DEADLETTER_INDEX, query={"term": {"host.name": host_name}})
    assert [h["_source"]["@timestamp"] for h in left["hits"]["hits"]] == [new_letter["@timestamp"]]
    assert RetentionSettings().logs == timedelta(days=365)
