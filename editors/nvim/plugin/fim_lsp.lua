-- fim-lsp: user commands, available before setup() runs (the daemon starts only in setup()).
if vim.g.loaded_fim_lsp then
  return
end
vim.g.loaded_fim_lsp = true

vim.api.nvim_create_user_command('FimLspStatus', function(args)
  require('fim_lsp').show_status(args.bang)
end, { bang = true, desc = "Show the fim-lsp daemon's fim/status (! for the whole object)" })

local actions = { 'enable', 'disable', 'toggle', 'status' }
vim.api.nvim_create_user_command('FimLsp', function(args)
  local action = args.fargs[1] or 'status'
  if action == 'status' then
    require('fim_lsp').show_status(args.bang)
  elseif vim.tbl_contains(actions, action) then
    require('fim_lsp')[action]()
  else
    vim.notify('fim-lsp: unknown action ' .. action .. '; use ' .. table.concat(actions, ', '), vim.log.levels.ERROR)
  end
end, {
  nargs = '?',
  bang = true,
  complete = function()
    return actions
  end,
  desc = 'fim-lsp: enable, disable or toggle suggestions (disable stops the daemon), or show the status',
})
