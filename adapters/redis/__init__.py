"""Redis adapters: Streams with consumer groups as the broker, hashes as the state store.

Layout of keys (``P`` is the key prefix, ``s`` a shard number; all keys of a run share the shard's
hash tag so one commit can change a run and queue its tasks atomically, also on Redis Cluster).
Every value is written and read through ``codec``:

- ``P:{s}:tasks`` / ``P:{s}:events``: the shard's task and event streams; ``P:{s}:dead``: dead letters
- ``P:{s}:timers``: timers (retries, attempt deadlines), a sorted set by due time
- ``P:{s}:runs:<STATUS>``: the shard's runs in that status, by creation time (for listing)
- ``P:{s}:run:<id>`` (meta hash), ``...:nodes`` (node states), ``...:out`` (outputs),
  ``...:staged`` (outputs reported by workers, moved to ``out`` by the commit that accepts them),
  ``...:history`` (the run's history entries)
- ``P:def:<id>``: definition documents; ``P:defs:*``: their versions, summaries and indexes
"""
