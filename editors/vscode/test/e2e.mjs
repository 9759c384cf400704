// End-to-end test driver for the fim-lsp VS Code extension (run by tests/editors/test_vscode.py).
// It installs the packaged .vsix into a fresh code-server, opens a Python file in Debian's
// Chromium through playwright-core, waits for the real daemon and model, types, waits for the
// ghost text, takes a screenshot, accepts with Tab, saves, and exercises the extension's
// commands. Progress goes to stderr; the last stdout line is a JSON summary.
//
// Usage: node e2e.mjs  (settings through environment variables, see `env` below)
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { chromium } from 'playwright-core';

const env = {
  codeServer: required('FIM_E2E_CODE_SERVER'), // code-server executable
  chromium: process.env.FIM_E2E_CHROMIUM ?? '/usr/lib/chromium/chromium',
  vsix: required('FIM_E2E_VSIX'), // passed to --install-extension exactly as given
  settings: required('FIM_E2E_SETTINGS'), // the README's settings.json, copied byte for byte
  binDir: required('FIM_E2E_BIN_DIR'), // put first on PATH: where `fim-lsp` lives
  work: required('FIM_E2E_WORK'), // scratch dir: user data, extensions, the project
  screenshot: required('FIM_E2E_SCREENSHOT'),
  readyTimeoutMs: Number(process.env.FIM_E2E_READY_TIMEOUT_MS ?? 420000),
};

// The fixture: the only sensible completion of `num` is `number % 2 == 0`.
const FIXTURE = 'def is_even(number):\n    """Return True when number is divisible by two."""\n    return ';
const TYPED = 'num';
const EXPECTED = '% 2 == 0';
// The multi-line fixture: typing the last `s` of `numbers` finishes a loop header whose body
// is empty, so the suggestion is the rest of the header and the loop's body.
const MULTI_LINE_FILE = 'evens.py';
const MULTI_LINE_FIXTURE =
  'def count_evens(numbers):\n    """Return how many of the numbers are even."""\n    count = 0\n' +
  '    for number in number\n    return count\n';
const MULTI_LINE_ROW = 4; // 1-based, as Ctrl+G takes it
// VS Code has no default key for accepting one line of a suggestion: the test binds one.
const ACCEPT_LINE_KEY = 'Control+Alt+L';

const started = Date.now();
const summary = { steps: {}, problems: [], labelsSeen: [] };
let codeServer;
let browser;

function required(name) {
  const value = process.env[name];
  if (!value) {
    fail(`environment variable ${name} is not set`);
  }
  return value;
}

function log(message) {
  process.stderr.write(`[e2e ${((Date.now() - started) / 1000).toFixed(1)}s] ${message}\n`);
}

function fail(message) {
  process.exitCode = 1;
  throw new Error(`E2E FAILURE: ${message}`);
}

function step(name) {
  summary.steps[name] = Number(((Date.now() - started) / 1000).toFixed(1));
  log(name);
}

/** Runs one check; a failure is recorded in summary.problems and the run goes on. */
async function check(name, body) {
  step(name);
  try {
    await body();
  } catch (error) {
    const message = String(error.message ?? error).replace(/^E2E FAILURE: /, '');
    log(`check failed: ${name}: ${message}`);
    summary.problems.push(`${name}: ${message}`);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function tail(file, lines = 30) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function waitForHttp(url, timeoutMs, logFile) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (codeServer.exitCode !== null) {
      fail(`code-server exited with code ${codeServer.exitCode} before serving:\n${tail(logFile)}`);
    }
    try {
      const response = await fetch(url);
      if (response.ok) {
        return;
      }
    } catch {
      // not listening yet
    }
    await sleep(500);
  }
  fail(`code-server did not answer ${url} within ${timeoutMs / 1000}s:\n${tail(logFile)}`);
}

/** Text of a Monaco view, with Monaco's non-breaking spaces made plain. */
async function viewText(locator) {
  return (await locator.innerText()).replace(/\u00a0/g, ' ');
}

async function runCommand(page, title) {
  await page.keyboard.press('Control+Shift+P');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout: 30000 });
  await input.fill(`>${title}`);
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
  await row.waitFor({ state: 'visible', timeout: 30000 });
  await page.keyboard.press('Enter');
  await input.waitFor({ state: 'hidden', timeout: 30000 });
}

/** Waits until the Output panel's channel picker shows `name`. */
async function waitForChannel(page, name) {
  const picker = page.locator('.part.panel select.monaco-select-box').first();
  const deadline = Date.now() + 30000;
  let shown = '';
  while (Date.now() < deadline) {
    shown = await picker
      .evaluate((select) => select.options[select.selectedIndex]?.text ?? '', { timeout: 5000 })
      .catch(() => '');
    if (shown === name) {
      summary.channels = [...(summary.channels ?? []), shown];
      return;
    }
    await sleep(250);
  }
  fail(`the Output panel shows channel "${shown}", not "${name}"`);
}

async function statusLabel(page) {
  const item = page.locator('.statusbar [aria-label^="fim-lsp"]').first();
  return (await item.getAttribute('aria-label', { timeout: 5000 }).catch(() => null)) ?? '';
}

async function waitForStatus(page, predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let label = '';
  while (Date.now() < deadline) {
    label = await statusLabel(page);
    if (label && !summary.labelsSeen.includes(label)) {
      summary.labelsSeen.push(label);
    }
    if (predicate(label)) {
      return label;
    }
    if (/^fim-lsp: (error|stopped)/.test(label)) {
      fail(`the status bar reports a failure while waiting for ${what}: ${label}`);
    }
    await sleep(500);
  }
  fail(`the status bar never showed ${what} within ${timeoutMs / 1000}s; last label: "${label}"`);
}

async function main() {
  const user = path.join(env.work, 'user-data');
  const extensions = path.join(env.work, 'extensions');
  const project = path.join(env.work, 'project');
  const file = path.join(project, 'is_even.py');
  const logFile = path.join(env.work, 'code-server.log');
  fs.mkdirSync(path.join(user, 'User'), { recursive: true });
  fs.mkdirSync(extensions, { recursive: true });
  fs.mkdirSync(path.join(project, '.vscode'), { recursive: true });
  // The user settings are the README's snippet, unchanged.
  fs.copyFileSync(env.settings, path.join(user, 'User', 'settings.json'));
  // VS Code's own defaults otherwise, quick suggestions and word-based suggestions
  // included: the suggest list opens while the user types, as it does for users.
  fs.writeFileSync(
    path.join(project, '.vscode', 'settings.json'),
    JSON.stringify(
      {
        'workbench.startupEditor': 'none',
        'workbench.welcomePage.walkthroughs.openOnInstall': false,
      },
      null,
      2,
    ),
  );
  fs.writeFileSync(file, FIXTURE);
  fs.writeFileSync(path.join(project, MULTI_LINE_FILE), MULTI_LINE_FIXTURE);
  fs.writeFileSync(
    path.join(user, 'User', 'keybindings.json'),
    JSON.stringify([
      {
        key: 'ctrl+alt+l',
        command: 'editor.action.inlineSuggest.acceptNextLine',
        when: 'inlineSuggestionVisible',
      },
    ]),
  );
  const config = path.join(env.work, 'code-server.yaml');
  fs.writeFileSync(config, 'auth: none\n');
  const common = ['--config', config, '--user-data-dir', user, '--extensions-dir', extensions];

  step('install the vsix');
  const install = spawnSync(env.codeServer, [...common, '--install-extension', env.vsix], {
    encoding: 'utf8',
    timeout: 180000,
  });
  if (install.status !== 0) {
    const output = `${install.stdout}\n${install.stderr}`;
    fail(`code-server --install-extension ${env.vsix} failed (${install.status}):\n${output}`);
  }
  const installed = fs.readdirSync(extensions).filter((name) => name.startsWith('fim-lsp.fim-lsp-'));
  if (installed.length !== 1) {
    fail(`the extension is not in ${extensions} after install: ${fs.readdirSync(extensions)}`);
  }
  summary.installed = installed[0];

  step('start code-server');
  const port = await freePort();
  const out = fs.openSync(logFile, 'a');
  codeServer = spawn(
    env.codeServer,
    [
      ...common,
      '--auth', 'none',
      '--bind-addr', `127.0.0.1:${port}`,
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--disable-getting-started-override',
      project,
    ],
    {
      env: {
        ...process.env,
        PATH: `${env.binDir}:${process.env.PATH}`,
        // Keep this PATH: VS Code's server otherwise takes the environment of a login shell.
        VSCODE_CLI: '1',
        // No extension gallery: nothing but 127.0.0.1 is contacted.
        EXTENSIONS_GALLERY: '{}',
      },
      stdio: ['ignore', out, out],
      detached: true,
    },
  );
  await waitForHttp(`http://127.0.0.1:${port}/healthz`, 120000, logFile);

  step('start chromium');
  try {
    browser = await chromium.launch({
      executablePath: env.chromium,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
      timeout: 120000,
    });
  } catch (error) {
    fail(`Chromium (${env.chromium}) did not start: ${error.message}`);
  }
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  page.setDefaultTimeout(60000);
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(project)}`, { timeout: 120000 });
  await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 180000 });

  step('wait for the model');
  const isReady = (label) => label.startsWith('fim-lsp: ready');
  const ready = await waitForStatus(page, isReady, env.readyTimeoutMs, 'ready');
  summary.readyLabel = ready;

  step('open is_even.py');
  await page.keyboard.press('Control+P');
  const quickOpen = page.locator('.quick-input-widget input');
  await quickOpen.waitFor({ state: 'visible', timeout: 30000 });
  await quickOpen.fill('is_even.py');
  await page.locator('.quick-input-list .monaco-list-row', { hasText: 'is_even.py' }).first().waitFor();
  await page.keyboard.press('Enter');
  const editor = page.locator('.editor-instance .monaco-editor').first();
  await editor.locator('.view-lines', { hasText: 'divisible by two' }).waitFor({ state: 'visible' });
  await editor.locator('.view-lines').click();
  await page.keyboard.press('Control+End');

  step('type and wait for ghost text');
  // With the suggest list open, the ghost text continues its selected item: the item's
  // rest is drawn as `.ghost-text-decoration`, what the daemon adds after it as `…-preview`.
  const ghost = editor.locator('.ghost-text-decoration, .ghost-text-decoration-preview');
  const ghostText = async () => (await ghost.allInnerTexts()).join('').replace(/\u00a0/g, ' ');
  let shown = false;
  for (let attempt = 1; attempt <= 3 && !shown; attempt++) {
    await page.keyboard.type(TYPED, { delay: 120 });
    try {
      await ghost.first().waitFor({ state: 'visible', timeout: 60000 });
      // A first suggestion may be replaced by the answer to a later keystroke: wait for it.
      const deadline = Date.now() + 30000;
      while (!shown && Date.now() < deadline) {
        shown = (await ghostText()).includes(EXPECTED);
        if (!shown) {
          await sleep(250);
        }
      }
    } catch {
      // no ghost text at all
    }
    if (!shown) {
      log(`attempt ${attempt}: ghost text "${await ghostText()}" lacks "${EXPECTED}"; typing again`);
      summary.retries = attempt;
      await page.keyboard.press('Escape');
      for (let i = 0; i < TYPED.length; i++) {
        await page.keyboard.press('Backspace');
      }
      await sleep(1000);
    }
  }
  if (!shown) {
    await page.screenshot({ path: env.screenshot });
    fail(`no .ghost-text-decoration holding "${EXPECTED}" after 3 attempts (screenshot: ${env.screenshot})`);
  }
  summary.ghostText = await ghostText();
  await page.screenshot({ path: env.screenshot });
  summary.screenshot = env.screenshot;

  step('accept with Tab and save');
  // Tab takes the suggest list's item when the list is open (VS Code's rule); the ghost
  // text that continues the item stays, and a second Tab takes it, as a user would press.
  const suggestList = page.locator('.editor-widget.suggest-widget.visible');
  summary.listOpenAtAccept = await suggestList.isVisible();
  await page.keyboard.press('Tab');
  summary.tabs = 1;
  await suggestList.waitFor({ state: 'hidden', timeout: 10000 });
  await sleep(500);
  if ((await ghostText()).includes(EXPECTED)) {
    summary.ghostAfterFirstTab = await ghostText();
    await page.keyboard.press('Tab');
    summary.tabs = 2;
  }
  await ghost.first().waitFor({ state: 'hidden', timeout: 30000 }).catch(() => {});
  await page.keyboard.press('Control+S');
  const deadline = Date.now() + 30000;
  let saved = '';
  while (Date.now() < deadline) {
    saved = fs.readFileSync(file, 'utf8');
    if (saved.includes(EXPECTED)) {
      break;
    }
    await sleep(250);
  }
  summary.saved = saved;

  // The checks below do not stop the run: each failure is recorded and reported at the end.
  await check('status bar counts the acceptance', async () => {
    summary.acceptedLabel = await waitForStatus(
      page,
      (label) => /accepted [1-9]/.test(label),
      60000,
      'an accepted suggestion',
    );
  });

  const panel = page.locator('.part.panel .monaco-editor .view-lines').first();
  await check('command: Show Status', async () => {
    await runCommand(page, 'fim-lsp: Show Status');
    await waitForChannel(page, 'fim-lsp status');
    await panel.filter({ hasText: 'state: ready' }).waitFor({ state: 'visible', timeout: 30000 });
    summary.statusText = await viewText(panel);
  });

  await check('command: Show Logs', async () => {
    await runCommand(page, 'fim-lsp: Show Logs');
    await waitForChannel(page, 'fim-lsp');
    // The view shows the end of the log: lines of a log channel, `<date> <time> [level] …`.
    const logLine = /\d{4}-\d\d-\d\d\s\d\d:\d\d:\d\d\.\d+\s\[(info|warning|error)\]/;
    try {
      await panel.filter({ hasText: logLine }).waitFor({ state: 'visible', timeout: 30000 });
    } finally {
      summary.logsText = await viewText(panel).catch((error) => String(error));
    }
  });

  await check('command: Toggle Inline Suggestions (off, then on)', async () => {
    await runCommand(page, 'fim-lsp: Toggle Inline Suggestions');
    summary.toggledOffLabel = await waitForStatus(page, (label) => label.includes(', off,'), 30000, 'off');
    summary.userSettingsAfterToggle = fs.readFileSync(path.join(user, 'User', 'settings.json'), 'utf8');
    await runCommand(page, 'fim-lsp: Toggle Inline Suggestions');
    summary.toggledOnLabel = await waitForStatus(page, (label) => label.includes(', on,'), 30000, 'on');
  });

  await check('notifications', async () => {
    await runCommand(page, 'Notifications: Show Notifications');
    const center = page.locator('.notifications-center');
    await center.waitFor({ state: 'visible', timeout: 30000 });
    await sleep(500);
    summary.notifications = await center.locator('.notification-list-item-message').allInnerTexts();
  });

  await check('multi-line suggestion: accept a line, then the rest', async () => {
    const multiFile = path.join(project, MULTI_LINE_FILE);
    // Saves until the file passes `done`: an accept command edits the buffer a moment
    // after its key, so one save right after the key can miss the edit.
    const saveUntil = async (done) => {
      const until = Date.now() + 30000;
      let text = '';
      do {
        await page.keyboard.press('Control+S');
        await sleep(500);
        text = fs.readFileSync(multiFile, 'utf8');
      } while (!done(text) && Date.now() < until);
      return text;
    };
    await page.keyboard.press('Escape');
    await page.keyboard.press('Control+P');
    await quickOpen.waitFor({ state: 'visible', timeout: 30000 });
    await quickOpen.fill(MULTI_LINE_FILE);
    await page.locator('.quick-input-list .monaco-list-row', { hasText: MULTI_LINE_FILE }).first().waitFor();
    await page.keyboard.press('Enter');
    const multiEditor = page.locator('.editor-instance .monaco-editor').first();
    await multiEditor.locator('.view-lines', { hasText: 'how many of the numbers' }).waitFor({ state: 'visible' });
    await multiEditor.locator('.view-lines').click();
    await page.keyboard.press('Control+G');
    await page.keyboard.type(String(MULTI_LINE_ROW));
    await page.keyboard.press('Enter');
    await page.keyboard.press('End');
    await page.keyboard.type('s', { delay: 120 });
    const multiGhost = multiEditor.locator('.ghost-text-decoration, .ghost-text-decoration-preview');
    await multiGhost.first().waitFor({ state: 'visible', timeout: 90000 });
    // The word list may be open on `numbers`; accept-line is an inline-suggestion key, so
    // the user first closes the list with Escape, which leaves the ghost text. The list
    // opens at its own pace: give it a moment.
    await suggestList.waitFor({ state: 'visible', timeout: 2000 }).catch(() => {});
    if (await suggestList.isVisible()) {
      summary.multiLineListClosed = true;
      await page.keyboard.press('Escape');
      await suggestList.waitFor({ state: 'hidden', timeout: 10000 });
      await multiGhost.first().waitFor({ state: 'visible', timeout: 90000 });
    }
    summary.multiLineGhost = (await multiGhost.allInnerTexts()).join('').replace(/\u00a0/g, ' ');
    await page.keyboard.press(ACCEPT_LINE_KEY);
    summary.multiLineAfterLine = await saveUntil((text) => text.includes('in numbers:'));
    // The rest of the suggestion is still ghost text (or comes back as one): Tab takes it.
    // When accept-line also took the line break, the rest starts with indentation at the
    // start of an empty line, and VS Code's Tab first indents up to it (its rule for ghost
    // text indented by a tab stop or more), then accepts: press Tab while ghost text shows.
    const restGhost = multiEditor.locator('[class*="ghost-text"]:not(.ghost-text-hidden)');
    await restGhost.first().waitFor({ state: 'visible', timeout: 90000 });
    summary.multiLineRest = (await restGhost.allInnerTexts()).join('\n').replace(/\u00a0/g, ' ');
    summary.multiLineTabs = 0;
    while (summary.multiLineTabs < 4 && (await restGhost.count()) > 0) {
      await page.keyboard.press('Tab');
      summary.multiLineTabs += 1;
      await sleep(1000);
    }
    summary.multiLineSaved = await saveUntil((text) => text.split('\n').length > MULTI_LINE_FIXTURE.split('\n').length);
  });

  step('done');
  summary.seconds = Number(((Date.now() - started) / 1000).toFixed(1));
}

async function cleanup() {
  if (browser) {
    await browser.close().catch(() => {});
  }
  if (codeServer && codeServer.exitCode === null) {
    // code-server runs in its own process group: stop it and the extension host with it.
    try {
      process.kill(-codeServer.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    for (let i = 0; i < 20 && codeServer.exitCode === null; i++) {
      await sleep(250);
    }
    try {
      process.kill(-codeServer.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

try {
  await main();
} catch (error) {
  process.exitCode = 1;
  process.stderr.write(`${error.stack ?? error}\n`);
  summary.error = String(error.message ?? error);
} finally {
  await cleanup();
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}
