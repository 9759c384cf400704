// The fim-lsp VS Code extension: starts the fim-lsp daemon, wires LSP 3.18 inline completion
// through vscode-languageclient, mirrors the `fimLsp.*` settings to the daemon, and shows the
// model's state and the acceptance rate in the status bar.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
} from 'vscode-languageclient/node';

const SECTION = 'fimLsp';
/** Settings only this extension reads; the daemon would report them as unknown options. */
const CLIENT_ONLY = new Set(['enable', 'serverPath', 'serverArgs', 'trace']);
/** Prefix of the daemon's model-load progress tokens (each load appends "/<n>"). */
const PROGRESS_TOKEN = 'fim-lsp/model';
const STATUS_METHOD = 'fim/status';
const ACCEPT_COMMAND = 'fim-lsp.accept';
const POLL_MS = 15000;
/** Custom notification: the cursor landed in another region; the daemon warms its prompt. */
const CURSOR_METHOD = 'fim/didMoveCursor';
const CURSOR_DEBOUNCE_MS = 150;
/** The cursor must move this many lines before the daemon is told (small moves share a prefix). */
const CURSOR_LINES = 8;

type ModelState = 'starting' | 'idle' | 'loading' | 'ready' | 'error' | 'stopped';

interface DaemonStatus {
  state?: string;
  model?: string;
  modelPath?: string | null;
  error?: string | null;
  counters?: { accepted?: number; shown?: number; suggested?: number; acceptance_rate?: number | null };
  lastNoSuggestionReason?: string | null;
  idlePrefillTokens?: number;
  [key: string]: unknown;
}

/** The `fimLsp` section minus the extension's own settings: what the daemon understands. */
function daemonSettings(): Record<string, unknown> {
  const section = vscode.workspace.getConfiguration(SECTION);
  const raw = JSON.parse(JSON.stringify(section)) as Record<string, unknown>;
  const settings: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (!CLIENT_ONLY.has(key) && value !== undefined && value !== null) {
      settings[key] = value;
    }
  }
  if (!inlineEnabled()) {
    // Off means no model work at all for this window, not only no ghost text.
    settings.idlePrefill = false;
    settings.speculative = false;
  }
  return settings;
}

function inlineEnabled(): boolean {
  return vscode.workspace.getConfiguration(SECTION).get<boolean>('enable', true);
}

function expandHome(value: string): string {
  if (value === '~') {
    return os.homedir();
  }
  if (value.startsWith('~/')) {
    return path.join(os.homedir(), value.slice(2));
  }
  return value;
}

/** Where the daemon is looked for when `fimLsp.serverPath` is left at its default. */
function fallbackLocations(): string[] {
  const home = os.homedir();
  return [path.join(home, '.local', 'bin', 'fim-lsp'), path.join(home, 'fim-lsp', '.venv', 'bin', 'fim-lsp')];
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** `name` looked up on PATH, as a shell would (with PATHEXT on Windows). */
function onPath(name: string): string | undefined {
  const extensions = process.platform === 'win32' ? (process.env.PATHEXT ?? '.EXE').split(';') : [''];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    for (const extension of extensions) {
      const candidate = path.join(dir, name + extension);
      if (dir && isExecutable(candidate)) {
        return candidate;
      }
    }
  }
  return undefined;
}

type DaemonLookup = { command: string } | { missing: string };

/**
 * The daemon to run: `fimLsp.serverPath` when it names a file or another program; else
 * `fim-lsp` on PATH, ~/.local/bin/fim-lsp (`make install`, pipx) or ~/fim-lsp/.venv/bin/fim-lsp
 * (a clone where the README puts it). VS Code started from a desktop menu often lacks
 * ~/.local/bin on its PATH, hence the explicit places. Exported for the package test
 * (tests/editors/test_vscode_package.py), which runs it from the bundle.
 */
export function findDaemon(): DaemonLookup {
  const setting = vscode.workspace.getConfiguration(SECTION).get<string>('serverPath', 'fim-lsp') || 'fim-lsp';
  const configured = expandHome(setting);
  if (configured.includes('/') || configured.includes(path.sep)) {
    return isExecutable(configured)
      ? { command: configured }
      : { missing: `fimLsp.serverPath is ${setting}, which is not an executable file.` };
  }
  const found = onPath(configured) ?? (setting === 'fim-lsp' ? fallbackLocations().find(isExecutable) : undefined);
  if (found) {
    return { command: found };
  }
  const looked = setting === 'fim-lsp' ? ['PATH', ...fallbackLocations()].join(', ') : 'PATH';
  return { missing: `The fim-lsp daemon \`${setting}\` was not found (looked in ${looked}).` };
}

/** How to get a daemon, shown with every "not found" error. */
const INSTALL_HINT =
  'Install it from a clone of fim-lsp with `make install` (or `pipx install .`), ' +
  'or set fimLsp.serverPath to the full path of fim-lsp.';

function percent(rate: number | null | undefined): string {
  return rate === null || rate === undefined ? '—' : `${Math.round(rate * 100)}%`;
}

/** The status bar item: loading progress, ready (with the acceptance rate), error, or off. */
class StatusItem implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  state: ModelState = 'starting';
  private progressMessage = '';
  private status: DaemonStatus | undefined;
  private failure = '';

  constructor() {
    this.item = vscode.window.createStatusBarItem('fimLsp.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'fim-lsp';
    this.item.command = 'fimLsp.showStatus';
    this.render();
    this.item.show();
  }

  setProgress(message: string, percentage?: number): void {
    this.state = 'loading';
    this.progressMessage = percentage === undefined ? message : `${message} ${percentage}%`;
    this.render();
  }

  setStatus(status: DaemonStatus): void {
    this.status = status;
    const known: ModelState[] = ['idle', 'loading', 'ready', 'error'];
    this.state = known.includes(status.state as ModelState) ? (status.state as ModelState) : 'starting';
    if (this.state !== 'loading') {
      this.progressMessage = '';
    }
    this.failure = status.error ?? '';
    this.render();
  }

  setFailure(state: 'error' | 'stopped', message: string): void {
    this.state = state;
    this.failure = message;
    this.render();
  }

  setStarting(): void {
    this.state = 'starting';
    this.status = undefined;
    this.failure = '';
    this.render();
  }

  render(): void {
    const enabled = inlineEnabled();
    const counters = this.status?.counters ?? {};
    const shown = counters.shown || counters.suggested || 0;
    const rate = percent(counters.acceptance_rate);
    let text: string;
    let label: string;
    const tooltip = new vscode.MarkdownString('', true);
    tooltip.appendMarkdown('**fim-lsp**');
    this.item.backgroundColor = undefined;
    switch (this.state) {
      case 'starting':
      case 'idle':
        text = '$(loading~spin) fim-lsp';
        label = 'fim-lsp: starting';
        tooltip.appendMarkdown('\n\nStarting the daemon…');
        break;
      case 'loading':
        text = `$(loading~spin) fim-lsp: ${this.progressMessage || 'loading model…'}`;
        label = `fim-lsp: loading the model (${this.progressMessage || 'starting'})`;
        tooltip.appendMarkdown('\n\nLoading the model; suggestions start when it is ready.');
        break;
      case 'ready':
        text = enabled ? `$(sparkle) fim-lsp ${rate}` : '$(circle-slash) fim-lsp off';
        label = `fim-lsp: ready, ${enabled ? 'on' : 'off'}, accepted ${counters.accepted ?? 0} of ${shown}`;
        tooltip.appendMarkdown(`\n\nModel \`${this.status?.model ?? '?'}\` is ready.`);
        tooltip.appendMarkdown(
          `\n\nAccepted ${counters.accepted ?? 0} of ${shown} suggestions (${rate}).`,
        );
        if (!enabled) {
          tooltip.appendMarkdown('\n\nInline suggestions are off: run *fim-lsp: Toggle Inline Suggestions*.');
        }
        break;
      case 'error':
      case 'stopped':
        text = '$(error) fim-lsp';
        label = `fim-lsp: ${this.state}: ${this.failure}`;
        tooltip.appendText(`\n\n${this.failure || 'The daemon stopped.'}`);
        this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
        break;
    }
    tooltip.appendMarkdown('\n\nClick for the full status.');
    this.item.text = text;
    this.item.tooltip = tooltip;
    this.item.accessibilityInformation = { label };
  }

  dispose(): void {
    this.item.dispose();
  }
}

class Extension implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private readonly output = vscode.window.createOutputChannel('fim-lsp', { log: true });
  private readonly statusOutput = vscode.window.createOutputChannel('fim-lsp status');
  private readonly statusItem = new StatusItem();
  private pollTimer: NodeJS.Timeout | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private cursorTimer: NodeJS.Timeout | undefined;
  private lastCursor: { uri: string; line: number } | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  activate(): void {
    this.disposables.push(
      this.output,
      this.statusOutput,
      this.statusItem,
      vscode.commands.registerCommand('fimLsp.toggle', () => this.toggle()),
      vscode.commands.registerCommand('fimLsp.showStatus', () => this.showStatus()),
      vscode.commands.registerCommand('fimLsp.showLogs', () => this.output.show(true)),
      vscode.commands.registerCommand('fimLsp.restart', () => this.restart()),
      vscode.workspace.onDidChangeConfiguration((event) => {
        const server = ['serverPath', 'serverArgs'].some((key) =>
          event.affectsConfiguration(`${SECTION}.${key}`),
        );
        if (server) {
          void this.restart();
        } else if (event.affectsConfiguration(`${SECTION}.enable`)) {
          this.statusItem.render();
        }
      }),
    );
    this.disposables.push(
      vscode.window.onDidChangeTextEditorSelection((event) => this.watchCursor(event.textEditor)),
      vscode.window.onDidChangeActiveTextEditor((editor) => {
        this.lastCursor = undefined; // focusing a file counts as a move
        if (editor) {
          this.watchCursor(editor);
        }
      }),
    );
    this.pollTimer = setInterval(() => void this.refreshStatus(), POLL_MS);
    void this.start();
  }

  /** Debounced: tell the daemon where the cursor is when it went somewhere new. */
  private watchCursor(editor: vscode.TextEditor): void {
    if (this.cursorTimer) {
      clearTimeout(this.cursorTimer);
    }
    this.cursorTimer = setTimeout(() => {
      const client = this.client;
      if (!client || client.state !== State.Running || !inlineEnabled()) {
        return;
      }
      const uri = editor.document.uri.toString();
      const position = editor.selection.active;
      const last = this.lastCursor;
      if (last && last.uri === uri && Math.abs(last.line - position.line) < CURSOR_LINES) {
        return;
      }
      this.lastCursor = { uri, line: position.line };
      void client.sendNotification(CURSOR_METHOD, {
        textDocument: client.code2ProtocolConverter.asTextDocumentIdentifier(editor.document),
        position: client.code2ProtocolConverter.asPosition(position),
      });
    }, CURSOR_DEBOUNCE_MS);
  }

  private createClient(command: string): LanguageClient {
    const config = vscode.workspace.getConfiguration(SECTION);
    const args = config.get<string[]>('serverArgs', ['serve']);
    // No `transport`: the daemon talks over stdio by default and rejects a `--stdio` flag.
    const serverOptions: ServerOptions = { command, args };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
      initializationOptions: daemonSettings(),
      synchronize: { configurationSection: SECTION },
      outputChannel: this.output,
      middleware: {
        provideInlineCompletionItems: (document, position, context, token, next) =>
          inlineEnabled() ? next(document, position, context, token) : undefined,
        executeCommand: async (name, args, next) => {
          const result = await next(name, args);
          if (name === ACCEPT_COMMAND) {
            this.scheduleRefresh(500);
          }
          return result;
        },
        handleWorkDoneProgress: (token, params, next) => {
          if (typeof token === 'string' && token.startsWith(PROGRESS_TOKEN)) {
            if (params.kind === 'end') {
              this.scheduleRefresh(0);
            } else {
              this.statusItem.setProgress(params.message ?? params.kind, params.percentage);
            }
          }
          next(token, params);
        },
        workspace: {
          // The daemon's pull of `fimLsp`: answer with its own options only.
          configuration: async (params, token, next) => {
            const result = await next(params, token);
            if (!Array.isArray(result)) {
              return result;
            }
            return result.map((value, index) =>
              params.items[index]?.section === SECTION ? daemonSettings() : value,
            );
          },
          // Pushed on every change of the `fimLsp` section, again without the client's own keys.
          didChangeConfiguration: async () => {
            await this.client?.sendNotification(DidChangeConfigurationNotification.type, {
              settings: { [SECTION]: daemonSettings() },
            });
          },
        },
      },
    };
    const client = new LanguageClient('fimLsp', 'fim-lsp', serverOptions, clientOptions);
    client.onDidChangeState((event) => {
      if (event.newState === State.Running) {
        this.scheduleRefresh(0);
      } else if (event.newState === State.Stopped && this.client === client) {
        this.statusItem.setFailure('stopped', 'The fim-lsp daemon stopped; see the fim-lsp output channel.');
      }
    });
    return client;
  }

  private async start(): Promise<void> {
    this.statusItem.setStarting();
    const daemon = findDaemon();
    if ('missing' in daemon) {
      this.reportStartFailure(`${daemon.missing} ${INSTALL_HINT}`);
      return;
    }
    this.output.info(`starting ${daemon.command}`);
    const client = this.createClient(daemon.command);
    this.client = client;
    try {
      await client.start();
    } catch (error) {
      this.reportStartFailure(`Could not start \`${daemon.command}\` (${String(error)}). ${INSTALL_HINT}`);
    }
  }

  private reportStartFailure(message: string): void {
    this.output.error(message);
    this.statusItem.setFailure('error', message);
    void vscode.window.showErrorMessage(`fim-lsp: ${message}`, 'Open Settings', 'Show Logs').then((choice) => {
      if (choice === 'Open Settings') {
        void vscode.commands.executeCommand('workbench.action.openSettings', `${SECTION}.serverPath`);
      } else if (choice) {
        this.output.show(true);
      }
    });
  }

  async restart(): Promise<void> {
    const old = this.client;
    this.client = undefined;
    if (old) {
      try {
        await old.dispose(5000);
      } catch (error) {
        this.output.warn(`stopping the daemon: ${String(error)}`);
      }
    }
    await this.start();
  }

  private scheduleRefresh(delay: number): void {
    if (this.refreshTimer) {
      clearTimeout(this.refreshTimer);
    }
    this.refreshTimer = setTimeout(() => void this.refreshStatus(), delay);
  }

  private async fetchStatus(): Promise<DaemonStatus | undefined> {
    const client = this.client;
    if (!client || client.state !== State.Running) {
      return undefined;
    }
    return client.sendRequest<DaemonStatus>(STATUS_METHOD, {});
  }

  private async refreshStatus(): Promise<void> {
    try {
      const status = await this.fetchStatus();
      if (status) {
        this.statusItem.setStatus(status);
        if (status.state === 'loading' || status.state === 'idle') {
          this.scheduleRefresh(2000);
        }
      }
    } catch (error) {
      this.output.debug(`fim/status: ${String(error)}`);
    }
  }

  async toggle(): Promise<void> {
    const config = vscode.workspace.getConfiguration(SECTION);
    const enabled = !inlineEnabled();
    await config.update('enable', enabled, vscode.ConfigurationTarget.Global);
    if (!enabled) {
      await vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
    }
    this.statusItem.render();
    void vscode.window.setStatusBarMessage(`fim-lsp: inline suggestions ${enabled ? 'on' : 'off'}`, 3000);
  }

  async showStatus(): Promise<void> {
    let status: DaemonStatus | undefined;
    try {
      status = await this.fetchStatus();
    } catch (error) {
      void vscode.window.showErrorMessage(`fim-lsp: fim/status failed: ${String(error)}`);
      return;
    }
    if (!status) {
      void vscode.window.showWarningMessage('fim-lsp: the daemon is not running (see fim-lsp: Show Logs).');
      return;
    }
    this.statusItem.setStatus(status);
    const counters = status.counters ?? {};
    const shown = counters.shown || counters.suggested || 0;
    this.statusOutput.clear();
    this.statusOutput.appendLine(`fim/status at ${new Date().toISOString()}:`);
    this.statusOutput.appendLine(JSON.stringify(status, null, 2));
    // The summary goes last: the output view scrolls to the end.
    this.statusOutput.appendLine(
      `state: ${status.state} · model: ${status.model}` +
        ` · inline suggestions: ${inlineEnabled() ? 'on' : 'off'}` +
        ` · accepted ${counters.accepted ?? 0} of ${shown} (${percent(counters.acceptance_rate)})` +
        ` · idle prefill ${status.idlePrefillTokens ?? 0} tokens` +
        (status.error ? ` · error: ${status.error}` : ''),
    );
    this.statusOutput.show(true);
  }

  dispose(): void {
    if (this.pollTimer) {
      clearInterval(this.pollTimer);
    }
    if (this.refreshTimer) {
      clearTimeout(this.refreshTimer);
    }
    for (const disposable of this.disposables) {
      disposable.dispose();
    }
  }

  async deactivate(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    try {
      await client?.dispose(3000);
    } finally {
      this.dispose();
    }
  }
}

let extension: Extension | undefined;

export function activate(_context: vscode.ExtensionContext): void {
  extension = new Extension();
  extension.activate();
}

export async function deactivate(): Promise<void> {
  await extension?.deactivate();
  extension = undefined;
}
