"""A named sale: one sale across hosts, through a Redis server.

- ``registry``: the sale on the server (hosts join, start together, share
  one history), and listing and dropping sales;
- ``stream``: each host streams its history lines to the sale, and any
  machine reads the whole sale back;
- ``host``: a run's part in a named sale (join, stream, judge at the end).
"""
