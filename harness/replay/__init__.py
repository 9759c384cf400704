"""Keystroke replay: traces of someone typing, played against the daemon and the peer.

* ``traces``: the trace format, the editor state it drives, and ``bench make-trace``;
* ``replayer``: one trace played against one system, what it showed at each pause;
* ``latency``: ``bench latency``, the replay over many traces and its report.
"""
