-- fim-lsp's own ghost text, for Neovim 0.10/0.11 (no vim.lsp.inline_completion) or when
-- `setup{ fallback = true }` forces it: after a short pause in insert mode it sends
-- textDocument/inlineCompletion, shows the answer as an extmark (inline virtual text plus
-- virtual lines) and applies it on accept. Any edit or cursor move hides the suggestion and
-- cancels the request in flight.

local M = {}

M.ns = vim.api.nvim_create_namespace('fim_lsp.ghost')

local METHOD = 'textDocument/inlineCompletion'
local AUTOMATIC = 2 -- InlineCompletionTriggerKind.Automatic

---@type table<integer, table>
local states = {}

local function fim()
  return require('fim_lsp')
end

local function stop_timer(state)
  local timer = state.timer
  state.timer = nil
  if timer and not timer:is_closing() then
    timer:stop()
    timer:close()
  end
end

local function cancel_request(state)
  local pending = state.pending
  state.pending = nil
  state.token = (state.token or 0) + 1 -- answers to older tokens are ignored
  if pending then
    local client = vim.lsp.get_client_by_id(pending.client_id)
    if client then
      if vim.fn.has('nvim-0.11') == 1 then
        client:cancel_request(pending.id)
      else
        client.cancel_request(pending.id)
      end
    end
  end
end

local function hide(bufnr)
  local state = states[bufnr]
  if state then
    state.shown = nil
  end
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  end
end

--- LSP character offset on `line` to a byte column.
local function byte_col(line, character, encoding)
  if encoding == 'utf-8' then
    return math.min(character, #line)
  end
  local ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  if ok and type(col) == 'number' then
    return col
  end
  -- Neovim 0.10: vim.str_byteindex(s, index, use_utf16), erroring past the end.
  ok, col = pcall(vim.str_byteindex, line, character, encoding == 'utf-16')
  return ok and col or #line
end

local function line_at(bufnr, row)
  return vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
end

local function item_text(item)
  local text = item.insertText
  if type(text) == 'table' then
    text = text.value -- a snippet: shown and inserted as plain text
  end
  return type(text) == 'string' and text or nil
end

--- What is left of `insert_text` to show after the cursor, given that the item replaces the
--- buffer from (row, start_col); nil when the typed text does not match the item.
local function remainder(bufnr, insert_text, start, cursor)
  if not start then
    return insert_text
  end
  local row, col = cursor[1], cursor[2]
  if start[1] ~= row or start[2] > col then
    return nil
  end
  local typed = line_at(bufnr, row):sub(start[2] + 1, col)
  if insert_text:sub(1, #typed) ~= typed then
    return nil
  end
  return insert_text:sub(#typed + 1)
end

--- The first word (with the whitespace before it) or the first line of `ghost`.
function M.piece(ghost, how)
  if how == 'word' then
    return ghost:match('^%s*[%w_]+') or ghost:match('^%s*[^%w_%s]+') or ghost:match('^%s+') or ghost
  elseif how == 'line' then
    return ghost:match('^\n?[^\n]*')
  end
  return ghost
end

local function cursor0()
  local pos = vim.api.nvim_win_get_cursor(0)
  return { pos[1] - 1, pos[2] }
end

local function set_cursor_after(row, col, lines)
  local last = #lines
  local end_col = (last == 1 and col or 0) + #lines[last]
  vim.api.nvim_win_set_cursor(0, { row + last, end_col })
end

--- Insert the next word/line of an item's text at the cursor (fallback and native mode).
--- `start` is where the item's range begins ({row, byte col}) or nil.
function M.insert_part(bufnr, client_id, insert_text, start, how)
  local cursor = cursor0()
  local ghost = remainder(bufnr, insert_text, start, cursor) or insert_text
  local part = M.piece(ghost, how)
  if part == '' then
    return
  end
  local lines = vim.split(part, '\n', { plain = true })
  vim.api.nvim_buf_set_text(bufnr, cursor[1], cursor[2], cursor[1], cursor[2], lines)
  set_cursor_after(cursor[1], cursor[2], lines)
  local client = client_id and vim.lsp.get_client_by_id(client_id)
  if client then
    fim().client_notify(client, 'textDocument/didPartiallyAcceptCompletion', {
      textDocument = { uri = vim.uri_from_bufnr(bufnr) },
      acceptedLength = #part,
    })
  end
end

local function show(bufnr)
  local state = states[bufnr]
  hide(bufnr)
  local items = state and state.items
  if not items or #items == 0 then
    return
  end
  local item = items[state.index]
  local client = vim.lsp.get_client_by_id(state.client_id)
  local text = item and item_text(item)
  if not client or not text then
    return
  end
  local cursor = cursor0()
  local encoding = client.offset_encoding or 'utf-16'
  local range
  if item.range then
    local s, e = item.range.start, item.range['end']
    range = {
      s.line,
      byte_col(line_at(bufnr, s.line), s.character, encoding),
      e.line,
      byte_col(line_at(bufnr, e.line), e.character, encoding),
    }
  else
    range = { cursor[1], cursor[2], cursor[1], cursor[2] }
  end
  local ghost = remainder(bufnr, text, { range[1], range[2] }, cursor)
  if not ghost or ghost == '' then
    return
  end
  local lines = vim.split(ghost, '\n', { plain = true })
  local virt_text = { { lines[1], 'FimLspGhost' } }
  if #items > 1 or state.show_index then
    table.insert(virt_text, { string.format(' (%d/%d)', state.index, #items), 'NonText' })
  end
  local virt_lines = {}
  for i = 2, #lines do
    table.insert(virt_lines, { { lines[i], 'FimLspGhost' } })
  end
  vim.api.nvim_buf_set_extmark(bufnr, M.ns, cursor[1], cursor[2], {
    virt_text = virt_text,
    virt_text_pos = 'inline',
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    hl_mode = 'combine',
  })
  state.shown = {
    item = item,
    text = text,
    ghost = ghost,
    range = range,
    cursor = cursor,
    tick = vim.api.nvim_buf_get_changedtick(bufnr),
  }
end

local function on_result(bufnr, token, err, result)
  local state = states[bufnr]
  if not state or state.token ~= token then
    return -- superseded by an edit or another request
  end
  state.pending = nil
  if err then
    return
  end
  if not vim.api.nvim_get_mode().mode:match('^i') or vim.api.nvim_get_current_buf() ~= bufnr then
    return
  end
  local asked = state.asked
  local cursor = cursor0()
  if
    not asked
    or asked.tick ~= vim.api.nvim_buf_get_changedtick(bufnr)
    or asked.cursor[1] ~= cursor[1]
    or asked.cursor[2] ~= cursor[2]
  then
    return
  end
  local items = result and (result.items or result) or {}
  local usable = {}
  for _, item in ipairs(items) do
    if item_text(item) then
      table.insert(usable, item)
    end
  end
  state.items, state.index, state.show_index = usable, 1, false
  show(bufnr)
end

--- Send textDocument/inlineCompletion for the cursor position now.
function M.request(bufnr)
  local state = states[bufnr]
  if not state or vim.api.nvim_get_current_buf() ~= bufnr then
    return
  end
  if not vim.api.nvim_get_mode().mode:match('^i') then
    return
  end
  local client = vim.lsp.get_client_by_id(state.client_id)
  if not client then
    return
  end
  cancel_request(state)
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding or 'utf-16')
  params.context = { triggerKind = AUTOMATIC }
  state.asked = { tick = vim.api.nvim_buf_get_changedtick(bufnr), cursor = cursor0() }
  local token = state.token
  local ok, id = fim().client_request(client, METHOD, params, function(err, result)
    on_result(bufnr, token, err, result)
  end, bufnr)
  if ok and id then
    state.pending = { client_id = client.id, id = id }
  end
end

local function on_edit(bufnr)
  local state = states[bufnr]
  if not state then
    return
  end
  hide(bufnr)
  cancel_request(state)
  stop_timer(state)
  state.items = nil
  state.timer = vim.defer_fn(function()
    state.timer = nil
    M.request(bufnr)
  end, state.debounce_ms)
end

--- Start ghost text in `bufnr` for the client `client_id`.
function M.attach(bufnr, client_id, config)
  local state = states[bufnr]
  if state then
    state.client_id = client_id
    return
  end
  state = { client_id = client_id, debounce_ms = config.debounce_ms or 150, token = 0 }
  states[bufnr] = state
  local group = vim.api.nvim_create_augroup('fim_lsp.ghost.' .. bufnr, { clear = true })
  state.group = group
  vim.api.nvim_create_autocmd({ 'InsertEnter', 'CursorMovedI', 'TextChangedI', 'TextChangedP' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      on_edit(bufnr)
    end,
  })
  vim.api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      M.dismiss(bufnr)
    end,
  })
  vim.api.nvim_create_autocmd('LspDetach', {
    group = group,
    buffer = bufnr,
    callback = function(args)
      if args.data and args.data.client_id == state.client_id then
        -- `:edit!` detaches the client and attaches it again, and this event can arrive
        -- after the new attach: detach only if the client is still gone once it settles.
        vim.schedule(function()
          if states[bufnr] == state and not vim.lsp.buf_is_attached(bufnr, state.client_id) then
            M.detach(bufnr)
          end
        end)
      end
    end,
  })
  -- Wipeout, not unload: `:edit!` reloads the same buffer, and the client may stay attached
  -- through it without another LspAttach.
  vim.api.nvim_create_autocmd('BufWipeout', {
    group = group,
    buffer = bufnr,
    callback = function()
      M.detach(bufnr)
    end,
  })
end

function M.detach(bufnr)
  local state = states[bufnr]
  if not state then
    return
  end
  hide(bufnr)
  cancel_request(state)
  stop_timer(state)
  pcall(vim.api.nvim_del_augroup_by_id, state.group)
  states[bufnr] = nil
end

--- Is a suggestion shown in `bufnr`?
function M.visible(bufnr)
  local state = states[bufnr or vim.api.nvim_get_current_buf()]
  return state ~= nil and state.shown ~= nil
end

--- The text the shown suggestion would add after the cursor (for tests and statuslines).
function M.shown_text(bufnr)
  local state = states[bufnr or vim.api.nvim_get_current_buf()]
  return state and state.shown and state.shown.ghost or nil
end

local function still_current(bufnr, shown)
  local cursor = cursor0()
  return vim.api.nvim_buf_is_valid(bufnr)
    and vim.api.nvim_get_current_buf() == bufnr
    and vim.api.nvim_buf_get_changedtick(bufnr) == shown.tick
    and cursor[1] == shown.cursor[1]
    and cursor[2] == shown.cursor[2]
end

--- Accept the shown suggestion ('all'), or its next 'word' or 'line'. Returns false when none
--- is shown. The edit is deferred so that the key can be an <expr> mapping.
function M.accept(bufnr, how)
  local state = states[bufnr]
  local shown = state and state.shown
  if not shown then
    return false
  end
  local client_id = state.client_id
  vim.schedule(function()
    if not still_current(bufnr, shown) then
      return
    end
    hide(bufnr)
    if how ~= 'all' then
      M.insert_part(bufnr, client_id, shown.text, { shown.range[1], shown.range[2] }, how)
      return
    end
    local r = shown.range
    local lines = vim.split(shown.text, '\n', { plain = true })
    vim.api.nvim_buf_set_text(bufnr, r[1], r[2], r[3], r[4], lines)
    set_cursor_after(r[1], r[2], lines)
    local command = shown.item.command
    local client = vim.lsp.get_client_by_id(client_id)
    if command and client then
      fim().client_request(
        client,
        'workspace/executeCommand',
        { command = command.command, arguments = command.arguments },
        function() end,
        bufnr
      )
    end
  end)
  return true
end

--- Hide the suggestion and cancel the request in flight; false when nothing was shown.
function M.dismiss(bufnr)
  local state = states[bufnr]
  if not state then
    return false
  end
  local was_shown = state.shown ~= nil
  hide(bufnr)
  cancel_request(state)
  stop_timer(state)
  state.items = nil
  return was_shown
end

--- Show the next (count = 1) or previous (-1) item; false when nothing is shown.
function M.cycle(bufnr, count)
  local state = states[bufnr]
  if not state or not state.shown or not state.items then
    return false
  end
  local n = #state.items
  state.index = (state.index - 1 + count) % n + 1
  state.show_index = true
  vim.schedule(function()
    show(bufnr)
  end)
  return true
end

return M
