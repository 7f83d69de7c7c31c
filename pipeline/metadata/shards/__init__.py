"""Sharded metadata: Instagram's logical shards over several PostgreSQL databases.

A fixed number of logical shards (default 8192, the 13 bits of a photo id) each live in a
schema of their own (``shard_0042``: photos, renditions, outbox, a fence, and ``next_id()``
whose ids carry the shard's number), on one of a few physical databases. Which database holds
which shard is data, the **shard map**, kept in a catalog in the database
``PHOTOPIPE_DATABASE_URL`` names, with a version that every process re-reads when it changes.

- :mod:`~pipeline.metadata.shards.map`: the map itself, placement by user and routing by id.
- :mod:`~pipeline.metadata.shards.catalog`: the map's tables in the catalog database.
- :mod:`~pipeline.metadata.shards.store`: :class:`~.store.ShardedMetadata`, the metadata port
  routed to the right database and schema, fanning out what spans shards.
- :mod:`~pipeline.metadata.shards.move`: moving one logical shard to another database, whole.
"""
