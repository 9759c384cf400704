"""harness: the headless editor. Drives ``fim-lsp serve`` over real LSP to test and measure it."""
