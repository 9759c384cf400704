;; ~/.emacs.d/init.el, with fim-lsp cloned to ~/fim-lsp and `make model` run there once
(add-to-list 'load-path "~/fim-lsp/editors/emacs")
(require 'fim-lsp)
(add-hook 'python-mode-hook #'fim-lsp-mode)
