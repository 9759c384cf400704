-- `:checkhealth fim_lsp`: the Neovim version and display mode, the daemon binary, the model
-- file (without downloading anything) and, when the daemon runs, its fim/status.

local M = {}

local health = vim.health

local function run(cmd)
  local ok, result = pcall(function()
    return vim.system(cmd, { text = true }):wait(60000)
  end)
  if not ok then
    return nil, tostring(result)
  end
  return result
end

--- The model the daemon will load: setup's settings.model, else the registry default.
local function check_model(binary, configured)
  local listing, failure = run({ binary, 'model', 'list' })
  if not listing or listing.code ~= 0 then
    health.error('`fim-lsp model list` failed: ' .. (failure or (listing and listing.stderr) or '?'))
    return
  end
  local name, cached = nil, nil
  for line in vim.gsplit(listing.stdout or '', '\n', { plain = true }) do
    local entry, mark = line:match('^(%S+)%s+(%S+)%s')
    if entry and entry ~= 'source:' then
      if (configured and entry == configured) or (not configured and line:find('(default)', 1, true)) then
        name, cached = entry, (mark == 'yes' or mark == 'cached')
      end
    end
  end
  if configured and not name then
    if configured:match('%.gguf$') then
      local path = vim.fn.expand(configured)
      if vim.fn.filereadable(path) == 1 then
        health.ok('model file: ' .. path)
      else
        health.error('model file not found: ' .. path)
      end
    else
      health.error(('model %q is neither a registry name nor a .gguf path'):format(configured))
    end
    return
  end
  if not name then
    health.warn('could not find the default model in `fim-lsp model list`')
  elseif cached then
    health.ok(('model %s is downloaded'):format(name))
  else
    health.error(('model %s is not downloaded'):format(name), {
      ('run `%s model pull %s` (or `make model` in the fim-lsp repository)'):format(binary, name),
    })
  end
end

function M.check()
  local fim = require('fim_lsp')
  health.start('fim-lsp')
  if vim.fn.has('nvim-0.10') ~= 1 then
    health.error('Neovim 0.10 or newer is needed')
  end
  if fim.uses_fallback() then
    health.ok('display: fim-lsp ghost text (fallback; vim.lsp.inline_completion not used)')
  else
    health.ok('display: vim.lsp.inline_completion')
  end

  local cmd = fim.cmd()
  local binary = cmd[1]
  if vim.fn.executable(binary) ~= 1 then
    health.error(('daemon not found: %s'):format(binary), {
      'run `make model` in the fim-lsp repository, or set setup{ cmd = { "/path/to/fim-lsp", "serve" } }',
    })
    return
  end
  local version = run({ binary, '--help' })
  if version and version.code == 0 then
    health.ok(('daemon: %s'):format(vim.fn.exepath(binary)))
  else
    health.error(('daemon %s does not run: %s'):format(binary, version and version.stderr or '?'))
    return
  end
  local settings = fim.config.settings or {}
  check_model(binary, settings.model)

  local clients = fim.clients()
  if #clients == 0 then
    health.info('the daemon is not running (it starts when a file is opened)')
    return
  end
  local status, err = fim.status_sync(5000)
  if not status then
    health.warn('fim/status failed: ' .. tostring(err))
  elseif status.state == 'ready' then
    health.ok('daemon state: ready; ' .. fim.format_status(status)[2])
  elseif status.state == 'error' then
    health.error('daemon state: error: ' .. tostring(status.error))
  else
    health.info('daemon state: ' .. tostring(status.state))
  end
end

return M
