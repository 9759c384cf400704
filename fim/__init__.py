"""fim: everything about fill-in-the-middle completion that does not know about LSP."""
