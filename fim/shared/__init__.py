"""One resident model for all of a user's editor windows: a host process and its client.

* ``wire``: the messages between a daemon and the host, and where the socket lives;
* ``host``: the process that holds the model and schedules every window's work;
* ``client``: ``SharedEngine``, the ``Backend`` a daemon uses to reach the host.
"""
