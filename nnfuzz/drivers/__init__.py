"""The drivers: what runs engines and hands their news to the run's one Campaign.

- :mod:`nnfuzz.drivers.engine`: the protocol between an engine and a driver (what an
  engine is, what it says, where its failures go);
- :mod:`nnfuzz.drivers.in_process`: one engine in this process (``nnfuzz run``);
- :mod:`nnfuzz.drivers.pool`: what the drivers of several workers share;
- :mod:`nnfuzz.drivers.processes`: ``--workers N``, worker processes on this machine;
- :mod:`nnfuzz.drivers.ray_actors`: ``--ray``, workers as Ray actors across a cluster;
- :mod:`nnfuzz.drivers.messages`: what a worker tells its parent.

Nothing is imported here: the engine protocol is imported by the engines themselves,
and a driver by whoever chooses it (nnfuzz.api).
"""
