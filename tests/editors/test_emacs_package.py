"""fim-lsp.el as an Emacs package: its header, a byte-compile without a warning, autoloads,
and what loading it changes: no eglot setting, and no key but TAB (only while a suggestion
is shown).

Emacs runs with -Q (no user or site init). On Emacs 28 eglot is not built in: Debian's
elpa-eglot folder (what scripts/setup-emacs.sh installs) is given to package.el, as a
user's package setup would.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "editors" / "emacs" / "fim-lsp.el"
SYSTEM_PACKAGES = Path("/usr/share/emacs/site-lisp/elpa")


def emacs() -> str:
    found = shutil.which("emacs")
    if found is None:
        pytest.fail("emacs is not installed: run scripts/setup-emacs.sh (or `make editors`)")
    return found


def package_setup(user_dir: Path) -> str:
    """Elisp that starts package.el on a private package folder, with the system's packages."""
    system = f'"{SYSTEM_PACKAGES}"' if SYSTEM_PACKAGES.is_dir() else ""
    return (
        "(progn (require 'package)"
        f' (setq package-user-dir "{user_dir}" package-directory-list (list {system}) package-archives nil)'
        " (package-initialize))"
    )


def batch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [emacs(), "-Q", "--batch", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_header() -> None:
    head = SOURCE.read_text().split(";;; Commentary:", 1)[0]
    assert head.startswith(";;; fim-lsp.el --- ") and "lexical-binding: t" in head.splitlines()[0]
    for field in (
        ";; Version: 0.2.0",
        ';; Package-Requires: ((emacs "28.1") (jsonrpc "1.0.14"))',
        ";; Keywords: ",
    ):
        assert field in head, field
    assert SOURCE.read_text().rstrip().endswith(";;; fim-lsp.el ends here")


def test_byte_compiles_without_a_warning(tmp_path: Path) -> None:
    copy = tmp_path / "fim-lsp.el"
    shutil.copyfile(SOURCE, copy)
    done = batch(
        "--eval", package_setup(tmp_path / "elpa"),
        "--eval", "(setq byte-compile-error-on-warn t)",
        "-f", "batch-byte-compile", str(copy),
        cwd=tmp_path,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Warning" not in output and "Error" not in output, output
    assert (tmp_path / "fim-lsp.elc").is_file()


def test_installs_as_a_package_with_autoloads(tmp_path: Path) -> None:
    """package-install-file reads the header, checks Package-Requires, byte-compiles and writes
    the autoloads; a fresh Emacs then knows the commands before fim-lsp.el is loaded."""
    elpa = tmp_path / "elpa"
    done = batch("--eval", f'(progn {package_setup(elpa)} (package-install-file "{SOURCE}"))', cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Warning" not in output, output
    (installed,) = elpa.glob("fim-lsp-*")
    assert installed.name == "fim-lsp-0.2.0"
    assert {"fim-lsp.el", "fim-lsp.elc", "fim-lsp-autoloads.el", "fim-lsp-pkg.el"} <= {
        p.name for p in installed.iterdir()
    }
    probe = (
        f"(progn {package_setup(elpa)}"
        ' (princ (format "before-load %S\\n" (featurep \'fim-lsp)))'
        " (dolist (command '(fim-lsp-eglot-register fim-lsp-mode fim-lsp-status fim-lsp-complete))"
        '   (princ (format "%S %S %S\\n" command (autoloadp (symbol-function command)) (commandp command))))'
        " (require 'fim-lsp)"
        ' (princ (format "after-load %S\\n" (featurep \'fim-lsp))))'
    )
    done = batch("--eval", probe, cwd=tmp_path)
    lines = done.stdout.splitlines()
    assert "before-load nil" in lines, done.stdout + done.stderr
    # fim-lsp-eglot-register is for init files; the others are commands (M-x).
    assert "fim-lsp-eglot-register t nil" in lines, done.stdout
    for command in ("fim-lsp-mode", "fim-lsp-status", "fim-lsp-complete"):
        assert f"{command} t t" in lines, done.stdout
    assert "after-load t" in lines


def probe(tmp_path: Path, body: str) -> list[str]:
    """Run `body` (Elisp that prints lines with princ) in `emacs -Q` with fim-lsp on load-path."""
    load_path = f'(add-to-list \'load-path "{SOURCE.parent}")'
    program = f"(progn {package_setup(tmp_path / 'elpa')} {load_path} {body})"
    done = batch("--eval", program, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


EGLOT_STATE = (
    "(list (copy-tree eglot-server-programs)"
    " (mapcar (lambda (generic) (length (cl--generic-method-table (cl--generic generic))))"
    "  '(eglot-client-capabilities eglot-handle-request eglot-handle-notification"
    "    eglot-initialization-options)))"
)


def test_loading_changes_no_eglot_setting(tmp_path: Path) -> None:
    lines = probe(
        tmp_path,
        "(require 'eglot)"
        f" (let ((before {EGLOT_STATE}))"
        "  (require 'fim-lsp)"
        f'  (princ (format "unchanged %S\n" (equal before {EGLOT_STATE}))))',
    )
    assert "unchanged t" in lines
    # Without eglot loaded, loading fim-lsp does not load it.
    lines = probe(tmp_path, "(require 'fim-lsp) (princ (format \"eglot-loaded %S\\n\" (featurep 'eglot)))")
    assert "eglot-loaded nil" in lines


def test_eglot_is_an_opt_in_line(tmp_path: Path) -> None:
    """(fim-lsp-eglot-register 'python-mode), before or after eglot loads, makes fim-lsp its
    server for that mode only."""
    lines = probe(
        tmp_path,
        "(require 'fim-lsp) (fim-lsp-eglot-register 'python-mode) (require 'eglot)"
        ' (princ (format "first %S\\n" (car eglot-server-programs)))'
        ' (princ (format "contact %S\\n" (cdr (funcall (cdar eglot-server-programs)))))'
        ' (princ (format "others %S\\n"'
        "  (cl-count 'fim-lsp--eglot-contact eglot-server-programs :key #'cdr)))",
    )
    assert "first (python-mode . fim-lsp--eglot-contact)" in lines, lines
    assert 'contact ("serve")' in lines, lines
    assert "others 1" in lines, lines


def test_default_keys_are_tab_only(tmp_path: Path) -> None:
    lines = probe(
        tmp_path,
        "(require 'fim-lsp)"
        " (let (keys)"
        "  (map-keymap (lambda (key command)"
        '                (push (format "%s=%s" (single-key-description key) command) keys))'
        "   fim-lsp-active-map)"
        '  (princ (format "keys %s\\n" (string-join (sort keys (function string<)) " "))))'
        # No suggestion shown: C-e, M-f and TAB keep their global meaning.
        ' (with-temp-buffer (princ (format "idle %S %S %S\\n" (key-binding (kbd "C-e"))'
        '   (key-binding (kbd "M-f")) (key-binding (kbd "TAB")))))'
        # Shown: only TAB changes.
        " (with-temp-buffer (setq fim-lsp--active t)"
        '  (princ (format "shown %S %S %S\\n" (key-binding (kbd "C-e"))'
        '   (key-binding (kbd "M-f")) (key-binding (kbd "TAB")))))',
    )
    assert "keys <tab>=fim-lsp-accept TAB=fim-lsp-accept" in lines, lines
    assert "idle move-end-of-line forward-word indent-for-tab-command" in lines, lines
    assert "shown move-end-of-line forward-word fim-lsp-accept" in lines, lines
