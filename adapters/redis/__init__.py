"""Redis adapters: Streams with consumer groups as the broker, hashes as the state store.

Layout of keys (``P`` is the key prefix, ``s`` a shard number; all keys of a run share the shard's
hash tag so one script can change a run and queue its tasks atomically, also on Redis Cluster):

- ``P:{s}:tasks`` / ``P:{s}:events``: the shard's task and event streams; ``P:{s}:dead``: dead letters
- ``P:{s}:timers``: retry timers (sorted set by due time)
- ``P:{s}:graph:<definition>``: what the transition script needs of a definition (per node: handler,
  children, retry policy, timeout; ``@roots``)
- ``P:{s}:run:<id>`` (meta hash), ``...:nodes`` (node states), ``...:out`` (outputs),
  ``...:staged`` (outputs reported by workers, promoted to ``out`` by the transition that accepts them)
- ``P:def:<id>``: definition sources
"""
