-- fim-lsp: user commands, available before setup() runs (the daemon starts only in setup()).
if vim.g.loaded_fim_lsp then
  return
end
vim.g.loaded_fim_lsp = true

vim.api.nvim_create_user_command('FimLspStatus', function(args)
  require('fim_lsp').show_status(args.bang)
end, { bang = true, desc = "Show the fim-lsp daemon's fim/status (! for the whole object)" })
