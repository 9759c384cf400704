-- ~/.config/nvim/lua/plugins/fim-lsp.lua: a lazy.nvim spec for the repository as published
-- (the plugin is its editors/nvim folder; `make model` builds the daemon and fetches the model)
return {
  "fim-lsp/fim-lsp",
  build = "make model",
  config = function(plugin, opts)
    vim.opt.runtimepath:append(plugin.dir .. "/editors/nvim")
    vim.cmd.runtime("plugin/fim_lsp.lua") -- its :FimLsp commands; lazy only loads the top folder's
    require("fim_lsp").setup(opts)
  end,
  opts = {},
}
