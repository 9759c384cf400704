"""cli: the ``fim-lsp`` command line, above both the daemon and the harness.

Imports go one way: ``cli`` -> ``lsp_server`` / ``harness`` -> ``fim``.
"""
