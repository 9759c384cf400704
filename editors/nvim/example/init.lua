-- ~/.config/nvim/init.lua, with fim-lsp cloned to ~/fim-lsp and `make model` run there once
vim.opt.runtimepath:append(vim.fn.expand("~/fim-lsp/editors/nvim"))
require("fim_lsp").setup({})
