"""The orphan sweep (``photopipe gc``): rendition objects that no row names and no render can
still claim, left by renders that crashed between writing their objects and their commit.

An object is garbage when its photo has no row, or its key is not among the photo's rendition
rows and it was written under an older lease than the row's (or under the row's own lease
while no render is running). An object of a render in progress is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby

from pipeline.jobs import lease_of
from pipeline.metadata import MetadataStore
from pipeline.storage import ObjectStore


@dataclass
class Swept:
    examined: int = 0
    orphans: list[str] = field(default_factory=list)
    deleted: int = 0


def sweep(store: ObjectStore, db: MetadataStore, *, delete: bool = True) -> Swept:
    """Find (and with ``delete``, remove) orphaned rendition objects, a photo at a time."""
    found = Swept()
    for photo_key, keys in groupby(store.list("photos/"), key=lambda k: k.split("/")[1]):
        listed = list(keys)
        found.examined += len(listed)
        if not photo_key.isdigit():
            continue
        orphans = _orphans(db, int(photo_key), listed)
        found.orphans += orphans
        if delete and orphans:
            store.delete_many(orphans)
            found.deleted += len(orphans)
    return found


def _orphans(db: MetadataStore, photo_id: int, keys: list[str]) -> list[str]:
    row = db.get(photo_id)
    if row is None:
        return keys
    named = {r.key for r in db.renditions(photo_id)}
    orphans = []
    for key in keys:
        lease = lease_of(key, photo_id)
        if key in named:
            continue
        older = lease is None or lease < row.lease
        if older or (lease == row.lease and row.status != "processing"):
            orphans.append(key)
    return orphans
