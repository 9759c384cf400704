"""lsp_server: the fim-lsp daemon (pygls) and the ``fim-lsp`` command line."""
