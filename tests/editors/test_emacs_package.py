"""fim-lsp.el as an Emacs package: its header, a byte-compile without a warning, and autoloads.

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
        ";; Version: 0.1.0",
        ';; Package-Requires: ((emacs "28.1") (eglot "1.9"))',
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
    assert installed.name == "fim-lsp-0.1.0"
    assert {"fim-lsp.el", "fim-lsp.elc", "fim-lsp-autoloads.el", "fim-lsp-pkg.el"} <= {
        p.name for p in installed.iterdir()
    }
    probe = (
        f"(progn {package_setup(elpa)}"
        ' (princ (format "before-load %S\\n" (featurep \'fim-lsp)))'
        " (dolist (command '(fim-lsp-ensure fim-lsp-inline-mode fim-lsp-status fim-lsp-complete))"
        '   (princ (format "%S %S %S\\n" command (autoloadp (symbol-function command)) (commandp command))))'
        " (require 'fim-lsp)"
        ' (princ (format "after-load %S\\n" (featurep \'fim-lsp))))'
    )
    done = batch("--eval", probe, cwd=tmp_path)
    lines = done.stdout.splitlines()
    assert "before-load nil" in lines, done.stdout + done.stderr
    # fim-lsp-ensure is for mode hooks; the others are commands (M-x).
    assert "fim-lsp-ensure t nil" in lines, done.stdout
    for command in ("fim-lsp-inline-mode", "fim-lsp-status", "fim-lsp-complete"):
        assert f"{command} t t" in lines, done.stdout
    assert "after-load t" in lines
