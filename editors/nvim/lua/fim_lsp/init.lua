-- fim-lsp for Neovim: starts the fim-lsp daemon as an LSP client and shows its inline
-- completions as ghost text, with keys to accept all / a word / a line, dismiss and cycle.
--
-- Neovim 0.12 has `vim.lsp.inline_completion`; it is used when present. On 0.10 and 0.11
-- (or with `setup{ fallback = true }`) the plugin's own ghost text (lua/fim_lsp/ghost.lua)
-- requests `textDocument/inlineCompletion` itself and uses the same keys.

local M = {}

M.name = 'fim_lsp'

local defaults = {
  -- The daemon command; nil finds it: this repository's .venv first, then `fim-lsp` on $PATH.
  cmd = nil,
  -- Filetypes to attach to; nil means every file buffer (the daemon has its own language filter).
  filetypes = nil,
  -- Filetypes never attached to, even when `filetypes` is nil: prose and commit messages,
  -- where a code model's suggestions are noise (copilot.lua leaves out the same ones).
  exclude_filetypes = { 'gitcommit', 'gitrebase', 'hgcommit', 'svn', 'cvs', 'help', 'markdown', 'yaml', 'text' },
  root_markers = { '.git' },
  -- Daemon options (see the README's option table), sent as initializationOptions and as the
  -- `fimLsp` section of workspace/configuration.
  settings = {},
  -- Use the plugin's own ghost text even where `vim.lsp.inline_completion` exists.
  fallback = false,
  -- Fallback only: wait this long after a keystroke before requesting (Neovim 0.12 uses 200 ms).
  debounce_ms = 150,
  -- Echo the daemon's model-loading progress.
  progress = true,
  -- Insert-mode keys; each acts only while a suggestion is shown and otherwise does what the key
  -- did before. Set a key to false to leave it unmapped.
  keys = {
    accept = '<Tab>',
    accept_word = '<M-Right>',
    accept_line = '<M-C-Right>',
    dismiss = '<C-]>',
    next = '<M-]>',
    prev = '<M-[>',
  },
}

M.config = vim.deepcopy(defaults)

local augroup = nil

--- The plugin's directory (editors/nvim), with symlinks resolved.
local function plugin_dir()
  local source = debug.getinfo(1, 'S').source:sub(2)
  local dir = vim.fn.fnamemodify(source, ':p:h:h:h')
  return (vim.uv or vim.loop).fs_realpath(dir) or dir
end

--- The daemon command: setup's `cmd`, else <repo>/.venv/bin/fim-lsp, else `fim-lsp` on $PATH.
function M.default_cmd()
  local venv = vim.fs.joinpath(plugin_dir(), '..', '..', '.venv', 'bin', 'fim-lsp')
  venv = vim.fs.normalize(vim.fn.fnamemodify(venv, ':p'))
  if vim.fn.executable(venv) == 1 then
    return { venv, 'serve' }
  end
  -- `make install` and pipx put it in ~/.local/bin, which a GUI-started Neovim's PATH may lack.
  local user = vim.fs.normalize('~/.local/bin/fim-lsp')
  if vim.fn.executable('fim-lsp') == 0 and vim.fn.executable(user) == 1 then
    return { user, 'serve' }
  end
  return { 'fim-lsp', 'serve' }
end

function M.cmd()
  return M.config.cmd or M.default_cmd()
end

--- True when the plugin shows its own ghost text instead of `vim.lsp.inline_completion`.
function M.uses_fallback()
  if M.config.fallback or vim.g.fim_lsp_fallback then
    return true
  end
  local ok, inline = pcall(function()
    return vim.lsp.inline_completion
  end)
  return not (ok and inline and inline.get and inline.enable)
end

--- Our running clients (optionally only those attached to `bufnr`).
function M.clients(bufnr)
  local get = vim.lsp.get_clients or vim.lsp.get_active_clients
  return get({ name = M.name, bufnr = bufnr })
end

local function client_request(client, method, params, handler, bufnr)
  if vim.fn.has('nvim-0.11') == 1 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end
M.client_request = client_request

local function client_notify(client, method, params)
  if vim.fn.has('nvim-0.11') == 1 then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end
M.client_notify = client_notify

-- ---------------------------------------------------------------------------------- status

--- Ask the daemon for `fim/status`; `callback(err, status)`.
function M.status(callback, bufnr)
  local client = M.clients(bufnr)[1] or M.clients()[1]
  if not client then
    callback('fim-lsp is not running (open a file to start it)', nil)
    return
  end
  client_request(client, 'fim/status', vim.empty_dict(), function(err, result)
    callback(err and (err.message or vim.inspect(err)) or nil, result)
  end)
end

--- `fim/status` synchronously (for scripts and tests); returns the status table or nil, err.
function M.status_sync(timeout_ms, bufnr)
  local done, status, failure = false, nil, nil
  M.status(function(err, result)
    done, status, failure = true, result, err
  end, bufnr)
  vim.wait(timeout_ms or 5000, function()
    return done
  end, 20)
  if not done then
    return nil, 'fim/status timed out'
  end
  return status, failure
end

local function pct(value)
  return value == nil and '-' or string.format('%.0f%%', value * 100)
end

--- The human-readable lines :FimLspStatus shows.
function M.format_status(status)
  local counters = status.counters or {}
  local lines = {
    string.format('fim-lsp %s: %s', status.version or '?', status.state or '?'),
    string.format('model: %s (%s)', status.model or '?', status.modelPath or 'not loaded'),
  }
  if status.error and status.error ~= vim.NIL then
    table.insert(lines, 'error: ' .. tostring(status.error))
  end
  table.insert(
    lines,
    string.format(
      'requests %d, suggested %d, accepted %d (acceptance %s), cache hits %d, cancelled %d',
      counters.requests or 0,
      counters.suggested or 0,
      counters.accepted or 0,
      pct(counters.acceptance_rate ~= vim.NIL and counters.acceptance_rate or nil),
      counters.cache_hits or 0,
      counters.cancelled or 0
    )
  )
  local reason = status.lastNoSuggestionReason
  if reason and reason ~= vim.NIL and reason ~= '' then
    table.insert(lines, 'last no-suggestion reason: ' .. reason)
  end
  local mode = M.uses_fallback() and 'fim-lsp ghost text (fallback)' or 'vim.lsp.inline_completion'
  table.insert(lines, 'display: ' .. mode)
  return lines
end

--- :FimLspStatus (with ! the whole fim/status object).
function M.show_status(full)
  M.status(function(err, status)
    vim.schedule(function()
      if err then
        vim.notify('fim-lsp: ' .. err, vim.log.levels.WARN)
        return
      end
      local text = full and vim.inspect(status) or table.concat(M.format_status(status), '\n')
      vim.api.nvim_echo({ { text } }, true, {})
    end)
  end, vim.api.nvim_get_current_buf())
end

-- ---------------------------------------------------------------------------------- native

local native = {}

local function native_ns()
  return vim.api.nvim_get_namespaces()['nvim.lsp.inline_completion']
end

function native.visible(bufnr)
  local ns = native_ns()
  if not ns then
    return false
  end
  return #vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { limit = 1 }) > 0
end

function native.accept(bufnr)
  return vim.lsp.inline_completion.get({ bufnr = bufnr })
end

function native.accept_part(bufnr, how)
  return vim.lsp.inline_completion.get({
    bufnr = bufnr,
    on_accept = function(item)
      local text = type(item.insert_text) == 'string' and item.insert_text or item.insert_text.value
      local start = item.range and { item.range.start.row, item.range.start.col } or nil
      require('fim_lsp.ghost').insert_part(bufnr, item.client_id, text, start, how)
    end,
  })
end

function native.dismiss(bufnr)
  if not native.visible(bufnr) then
    return false
  end
  -- get() with a no-op on_accept is the public way to drop the current item.
  return vim.lsp.inline_completion.get({ bufnr = bufnr, on_accept = function() end })
end

function native.cycle(bufnr, count)
  if not native.visible(bufnr) then
    return false
  end
  vim.lsp.inline_completion.select({ bufnr = bufnr, count = count })
  return true
end

-- ---------------------------------------------------------------------------------- keys

local function termcodes(keys)
  return vim.api.nvim_replace_termcodes(keys, true, true, true)
end

--- Return what `key` did before we mapped it in `bufnr`, as an expr-mapping result.
local function fall_through(previous, key)
  if previous and previous.lhs then
    if previous.callback then
      local result = previous.callback()
      if previous.expr == 1 and type(result) == 'string' then
        return previous.replace_keycodes == 1 and termcodes(result) or result
      end
      return ''
    end
    local rhs = previous.rhs or ''
    if previous.expr == 1 then
      rhs = vim.api.nvim_eval(rhs)
    end
    rhs = termcodes(rhs)
    if previous.noremap == 0 then
      -- The old mapping wanted its keys remapped; an <expr> result never is, so feed them.
      vim.api.nvim_feedkeys(rhs, 'im', false)
      return ''
    end
    return rhs
  end
  return key
end

local function actions_for(bufnr)
  local ghost = require('fim_lsp.ghost')
  if M.uses_fallback() then
    return {
      accept = function()
        return ghost.accept(bufnr, 'all')
      end,
      accept_word = function()
        return ghost.accept(bufnr, 'word')
      end,
      accept_line = function()
        return ghost.accept(bufnr, 'line')
      end,
      dismiss = function()
        return ghost.dismiss(bufnr)
      end,
      next = function()
        return ghost.cycle(bufnr, 1)
      end,
      prev = function()
        return ghost.cycle(bufnr, -1)
      end,
    }
  end
  return {
    accept = function()
      return native.accept(bufnr)
    end,
    accept_word = function()
      return native.accept_part(bufnr, 'word')
    end,
    accept_line = function()
      return native.accept_part(bufnr, 'line')
    end,
    dismiss = function()
      return native.dismiss(bufnr)
    end,
    next = function()
      return native.cycle(bufnr, 1)
    end,
    prev = function()
      return native.cycle(bufnr, -1)
    end,
  }
end

local descriptions = {
  accept = 'fim-lsp: accept the suggestion',
  accept_word = 'fim-lsp: accept the next word of the suggestion',
  accept_line = 'fim-lsp: accept the next line of the suggestion',
  dismiss = 'fim-lsp: dismiss the suggestion',
  next = 'fim-lsp: next suggestion',
  prev = 'fim-lsp: previous suggestion',
}

local function map_keys(bufnr)
  if vim.b[bufnr].fim_lsp_mapped then
    return
  end
  vim.b[bufnr].fim_lsp_mapped = true
  local actions = actions_for(bufnr)
  for action, lhs in pairs(M.config.keys or {}) do
    if lhs and actions[action] then
      local previous = vim.fn.maparg(lhs, 'i', false, true)
      local key = termcodes(lhs)
      vim.keymap.set('i', lhs, function()
        -- Every action defers its buffer edits, so this may run as an <expr> mapping.
        if actions[action]() then
          return ''
        end
        return fall_through(previous, key)
      end, { buffer = bufnr, expr = true, replace_keycodes = false, desc = descriptions[action] })
    end
  end
end

-- ---------------------------------------------------------------------------------- attach

--- The cursor must move this many lines before the daemon is told (small moves share a prefix).
M.cursor_lines = 8
M.cursor_debounce_ms = 150

--- Tell the daemon, debounced, where the cursor lands when it goes to another region, so it can
--- prefill that region's prompt before the first keystroke there (`fim/didMoveCursor`).
--- Buffers being watched: `:edit!` attaches the client again, and must not add a second watcher.
local watching = {}

local function watch_cursor(bufnr)
  if watching[bufnr] then
    return
  end
  local uv = vim.uv or vim.loop
  local timer = uv.new_timer()
  watching[bufnr] = timer
  local last_line = nil
  local function send()
    if not vim.api.nvim_buf_is_valid(bufnr) or vim.api.nvim_get_current_buf() ~= bufnr then
      return
    end
    -- Looked up now: the client may have been restarted since the buffer was first attached.
    local client = M.clients(bufnr)[1]
    if not client then
      return
    end
    local line = vim.api.nvim_win_get_cursor(0)[1] - 1
    if last_line and math.abs(line - last_line) < M.cursor_lines then
      return
    end
    last_line = line
    local params = vim.lsp.util.make_position_params(0, client.offset_encoding or 'utf-16')
    client_notify(client, 'fim/didMoveCursor', params)
  end
  vim.api.nvim_create_autocmd({ 'CursorMoved', 'CursorMovedI', 'BufEnter' }, {
    group = augroup,
    buffer = bufnr,
    callback = function(args)
      if args.event == 'BufEnter' then
        last_line = nil -- focusing a buffer again counts as a move
      end
      timer:stop()
      timer:start(M.cursor_debounce_ms, 0, vim.schedule_wrap(send))
    end,
  })
  -- Wipeout, not unload: `:edit!` unloads and reloads the same buffer, which keeps its autocmds.
  vim.api.nvim_create_autocmd('BufWipeout', {
    group = augroup,
    buffer = bufnr,
    once = true,
    callback = function()
      watching[bufnr] = nil
      timer:stop()
      if not timer:is_closing() then
        timer:close()
      end
    end,
  })
end

local function on_attach(bufnr, client)
  watch_cursor(bufnr)
  if M.uses_fallback() then
    require('fim_lsp.ghost').attach(bufnr, client.id, M.config)
  else
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
  end
  map_keys(bufnr)
end

local function on_progress(args)
  local data = args.data or {}
  local client = data.client_id and vim.lsp.get_client_by_id(data.client_id)
  if not client or client.name ~= M.name or not M.config.progress then
    return
  end
  local value = (data.params or {}).value or {}
  local message = value.message or value.title
  if message then
    vim.api.nvim_echo({ { 'fim-lsp: ' .. message, 'MoreMsg' } }, false, {})
  end
end

--- Should fim-lsp attach to `bufnr`? Only file buffers of an allowed filetype, while enabled.
function M.wanted(bufnr)
  if not M.enabled or vim.bo[bufnr].buftype ~= '' then
    return false
  end
  local filetype = vim.bo[bufnr].filetype
  local filetypes = M.config.filetypes
  if filetypes and not vim.tbl_contains(filetypes, filetype) then
    return false
  end
  return not vim.tbl_contains(M.config.exclude_filetypes or {}, filetype)
end

local function root_of(bufnr)
  local path = vim.api.nvim_buf_get_name(bufnr)
  return vim.fs.root(bufnr, M.config.root_markers or {}) or vim.fs.dirname(path)
end

local function lsp_config()
  local settings = M.config.settings or {}
  if next(settings) == nil then
    settings = vim.empty_dict() -- an empty Lua table would be sent as a JSON array
  end
  return {
    cmd = M.cmd(),
    filetypes = M.config.filetypes,
    root_markers = M.config.root_markers,
    init_options = settings,
    settings = { fimLsp = settings },
    -- Neovim 0.11+: a buffer is attached only when this calls on_dir (excluded ones never are).
    root_dir = function(bufnr, on_dir)
      if M.wanted(bufnr) then
        on_dir(root_of(bufnr))
      end
    end,
  }
end

--- Start the daemon for `bufnr`: on Neovim 0.10, which has no vim.lsp.config/enable, and
--- for the buffers already open when `:FimLsp enable` runs.
local function start_legacy(bufnr)
  if not M.wanted(bufnr) then
    return
  end
  local config = lsp_config()
  config.name = M.name
  config.root_dir = root_of(bufnr)
  vim.lsp.start(config, { bufnr = bufnr })
end

--- Start fim-lsp again for every loaded buffer it wants (after `:FimLsp enable`).
local function attach_loaded_buffers()
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) then
      start_legacy(bufnr) -- vim.lsp.enable's clients are found again by name and root
    end
  end
end

--- `:FimLsp enable`: attach to the buffers it wants; the daemon starts again.
function M.enable()
  M.enabled = true
  attach_loaded_buffers()
end

--- `:FimLsp disable`: stop the daemon, so nothing is suggested and no model work is done.
function M.disable()
  M.enabled = false
  for _, client in ipairs(M.clients()) do
    for bufnr in pairs(client.attached_buffers or {}) do
      pcall(function()
        require('fim_lsp.ghost').detach(bufnr)
      end)
    end
    if vim.fn.has('nvim-0.11') == 1 then
      client:stop(true)
    else
      client.stop(true)
    end
  end
end

function M.toggle()
  if M.enabled then
    M.disable()
  else
    M.enable()
  end
end

--- Configure and start fim-lsp. Call once from init.lua.
function M.setup(opts)
  M.config = vim.tbl_deep_extend('force', vim.deepcopy(defaults), opts or {})
  M.enabled = true
  if opts and opts.exclude_filetypes then
    M.config.exclude_filetypes = opts.exclude_filetypes -- a list replaces the default, not merges
  end
  if opts and opts.keys == false then
    M.config.keys = {}
  end
  vim.api.nvim_set_hl(0, 'FimLspGhost', { link = 'Comment', default = true })

  augroup = vim.api.nvim_create_augroup('fim_lsp', { clear = true })
  vim.api.nvim_create_autocmd('LspAttach', {
    group = augroup,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == M.name then
        on_attach(args.buf, client)
      end
    end,
  })
  vim.api.nvim_create_autocmd('LspProgress', { group = augroup, callback = on_progress })

  if vim.lsp.config and vim.lsp.enable then
    vim.lsp.config(M.name, lsp_config())
    vim.lsp.enable(M.name)
  else
    vim.api.nvim_create_autocmd('FileType', {
      group = augroup,
      callback = function(args)
        start_legacy(args.buf)
      end,
    })
  end
end

return M
