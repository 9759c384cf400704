"""Thin LSP handlers, one module per concern; the logic lives beside them."""
