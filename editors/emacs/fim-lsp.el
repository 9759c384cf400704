;;; fim-lsp.el --- Local code completion from the fim-lsp daemon, through eglot  -*- lexical-binding: t; -*-

;; Copyright (C) 2026 the fim-lsp authors
;; SPDX-License-Identifier: MIT

;; Author: the fim-lsp authors
;; Version: 0.1.0
;; Package-Requires: ((emacs "28.1") (eglot "1.9"))
;; Keywords: tools, convenience, languages

;;; Commentary:

;; fim-lsp is a local code-completion daemon: a small code model answers LSP requests.
;; This file
;;  - registers the daemon with eglot for the modes in `fim-lsp-modes', so
;;    `completion-at-point' (eglot's textDocument/completion) offers its completion;
;;  - adds `fim-lsp-inline-mode', which asks for textDocument/inlineCompletion on the
;;    eglot connection after a short idle time and shows the answer as ghost text (an
;;    overlay).  TAB accepts it (and otherwise does what TAB always does); any other edit
;;    hides it, and typing cancels the request in flight;
;;  - shows the daemon's model-loading progress on eglot versions that do not (1.9);
;;  - `fim-lsp-status' shows the daemon's fim/status.
;;
;; Minimal setup, with the repository cloned to ~/fim-lsp:
;;   (add-to-list 'load-path "~/fim-lsp/editors/emacs")
;;   (require 'fim-lsp)
;;   (add-hook 'python-mode-hook #'fim-lsp-ensure)
;;
;; eglot manages one server per buffer: in the modes of `fim-lsp-modes' fim-lsp takes the
;; place of the language server eglot would start there.

;;; Code:

(require 'cl-lib)
(require 'subr-x)
(require 'jsonrpc)
(require 'eglot)

(defgroup fim-lsp nil
  "Local code completion from the fim-lsp daemon."
  :group 'tools
  :prefix "fim-lsp-")

(defcustom fim-lsp-program nil
  "The fim-lsp executable.
nil means the .venv of the repository this file is in, else `fim-lsp'
on `exec-path', else ~/.local/bin/fim-lsp."
  :type '(choice (const :tag "Find it" nil) file))

(defcustom fim-lsp-modes
  '(python-mode python-ts-mode js-mode js-ts-mode typescript-mode typescript-ts-mode
    go-mode go-ts-mode rust-mode rust-ts-mode c-mode c-ts-mode c++-mode c++-ts-mode
    java-mode java-ts-mode lua-mode)
  "Major modes for which eglot starts fim-lsp.
Changing it takes effect through `fim-lsp-register'."
  :type '(repeat symbol))

(defcustom fim-lsp-options nil
  "Daemon options sent as initializationOptions.
A plist such as (:model \"qwen2.5-coder-1.5b\")."
  :type 'plist)

(defcustom fim-lsp-idle-delay 0.2
  "Seconds of idle time after an edit before asking for a suggestion."
  :type 'number)

(defcustom fim-lsp-request-timeout 60
  "Seconds to wait for the daemon's answer to one inline completion request."
  :type 'number)

(defface fim-lsp-ghost-face '((t :inherit shadow))
  "Face of the suggestion shown after point.")

(defconst fim-lsp--directory
  (file-name-directory (file-truename (or load-file-name buffer-file-name default-directory)))
  "Where this file is: editors/emacs in the fim-lsp repository.")

(defun fim-lsp-program ()
  "The daemon executable that eglot will run."
  (or fim-lsp-program
      (let ((venv (expand-file-name "../../.venv/bin/fim-lsp" fim-lsp--directory)))
        (and (file-executable-p venv) venv))
      (executable-find "fim-lsp")
      ;; `make install' and pipx put it here, which a GUI Emacs's `exec-path' may lack.
      (let ((user (expand-file-name "~/.local/bin/fim-lsp")))
        (and (file-executable-p user) user))
      "fim-lsp"))

(defun fim-lsp--contact (&optional _interactive)
  "The eglot contact for the daemon."
  `(,(fim-lsp-program) "serve"
    ,@(when fim-lsp-options (list :initializationOptions fim-lsp-options))))

(defvar fim-lsp--registered-modes nil
  "The modes of the entry `fim-lsp-register' put into `eglot-server-programs'.")

(defun fim-lsp-register ()
  "Put fim-lsp first in `eglot-server-programs' for `fim-lsp-modes'."
  (setq eglot-server-programs
        (cl-remove-if (lambda (entry) (equal (car entry) fim-lsp--registered-modes))
                      eglot-server-programs))
  (setq fim-lsp--registered-modes (copy-sequence fim-lsp-modes))
  (push (cons fim-lsp--registered-modes #'fim-lsp--contact) eglot-server-programs))

(fim-lsp-register)

;;;###autoload
(defun fim-lsp-ensure ()
  "For a major-mode hook: start fim-lsp through eglot.
Also turn on `fim-lsp-inline-mode' in the buffer."
  (fim-lsp-inline-mode 1)
  (eglot-ensure))

;;; Client capabilities and progress

(cl-defmethod eglot-client-capabilities :around (_server)
  "On eglot 1.9, which has no progress support, announce work-done progress.
Inline completion is not declared: the daemon answers it anyway, and offers
`completion-at-point' only to clients that do not show ghost text."
  (let ((capabilities (cl-call-next-method)))
    (unless (plist-get capabilities :window)
      (setq capabilities (plist-put capabilities :window '(:workDoneProgress t))))
    capabilities))

(defvar fim-lsp-last-progress nil
  "The last work-done progress message from the daemon, e.g. \"model ready\".")

(unless (boundp 'eglot-report-progress)
  ;; eglot before 1.10 neither asks for nor shows $/progress; the daemon reports loading
  ;; the model that way, so show it in the echo area.
  (cl-defmethod eglot-handle-request
    (_server (_method (eql window/workDoneProgress/create)) &key _token)
    "Accept the server's progress token."
    nil)

  (cl-defmethod eglot-handle-notification
    (_server (_method (eql $/progress)) &key _token value)
    "Show the server's work-done progress VALUE in the echo area."
    (let ((text (or (plist-get value :message) (plist-get value :title))))
      (when text
        (setq fim-lsp-last-progress text)
        (let ((message-log-max nil))
          (message "fim-lsp: %s" text))))))

;;; Status

(defun fim-lsp--server ()
  "The eglot server of this buffer, if it runs fim-lsp."
  (let ((server (ignore-errors (eglot-current-server))))
    (and server
         (equal (ignore-errors (plist-get (eglot--server-info server) :name)) "fim-lsp")
         server)))

;;;###autoload
(defun fim-lsp-status ()
  "Show the daemon's fim/status and return it as a plist."
  (interactive)
  (let ((server (fim-lsp--server)))
    (unless server
      (user-error "fim-lsp is not running in this buffer"))
    (let* ((status (jsonrpc-request server :fim/status eglot--{}))
           (counters (plist-get status :counters))
           (rate (plist-get counters :acceptance_rate)))
      (message "fim-lsp %s: %s; model %s; requests %s, suggested %s, accepted %s (acceptance %s)%s"
               (plist-get status :version) (plist-get status :state) (plist-get status :model)
               (plist-get counters :requests) (plist-get counters :suggested)
               (plist-get counters :accepted)
               (if (numberp rate) (format "%.0f%%" (* 100 rate)) "-")
               (let ((reason (plist-get status :lastNoSuggestionReason)))
                 (if (and (stringp reason) (not (string-empty-p reason)))
                     (format "; last no-suggestion reason: %s" reason)
                   "")))
      status)))

;;; Inline completion

(defvar fim-lsp-inline-mode)

(defvar-local fim-lsp--shown nil
  "The suggestion on screen: a plist (:item :text :ghost :beg :end :point :tick).")
(defvar-local fim-lsp--overlay nil)
(defvar-local fim-lsp--items nil "The items of the last answer, a list.")
(defvar-local fim-lsp--index 0)
(defvar-local fim-lsp--timer nil)
(defvar-local fim-lsp--pending nil "(SERVER . ID) of the request in flight.")
(defvar-local fim-lsp--generation 0 "Answers to older generations are ignored.")
(defvar-local fim-lsp--last-tick nil)
(defvar-local fim-lsp--cursor-line nil "The line last sent with fim/didMoveCursor.")
(defvar fim-lsp--cursor-timer nil)
(defconst fim-lsp-cursor-lines 8
  "The cursor must move this many lines before the daemon is told where it is.")
(defvar-local fim-lsp--active nil "Non-nil while a suggestion is shown: turns on `fim-lsp-active-map'.")
(defvar fim-lsp-cancelled-ids nil "IDs of the requests cancelled most recently (newest first).")

(defvar fim-lsp-active-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "TAB") #'fim-lsp-accept)
    (define-key map [tab] #'fim-lsp-accept)
    (define-key map (kbd "M-f") #'fim-lsp-accept-word)
    (define-key map (kbd "C-e") #'fim-lsp-accept-line)
    (define-key map (kbd "M-]") #'fim-lsp-next)
    (define-key map (kbd "M-[") #'fim-lsp-previous)
    (define-key map (kbd "C-g") #'fim-lsp-dismiss)
    map)
  "Keys that act on the suggestion; active only while one is shown.")

(defvar fim-lsp--emulation-alist `((fim-lsp--active . ,fim-lsp-active-map)))
(add-to-list 'emulation-mode-map-alists 'fim-lsp--emulation-alist)

(defconst fim-lsp--own-commands
  '(fim-lsp-accept fim-lsp-accept-word fim-lsp-accept-line fim-lsp-next fim-lsp-previous
    fim-lsp-dismiss fim-lsp-complete))

(defun fim-lsp--hide ()
  "Remove the suggestion from the screen."
  (when (overlayp fim-lsp--overlay)
    (delete-overlay fim-lsp--overlay))
  (setq fim-lsp--overlay nil
        fim-lsp--shown nil
        fim-lsp--active nil))

(defun fim-lsp--cancel ()
  "Forget the request in flight and ask the daemon to stop it."
  (cl-incf fim-lsp--generation)
  (when fim-lsp--pending
    (let ((server (car fim-lsp--pending))
          (id (cdr fim-lsp--pending)))
      (setq fim-lsp--pending nil)
      (when (and id (jsonrpc-running-p server))
        (push id fim-lsp-cancelled-ids)
        (when (> (length fim-lsp-cancelled-ids) 20)
          (setcdr (nthcdr 19 fim-lsp-cancelled-ids) nil))
        (jsonrpc-notify server :$/cancelRequest (list :id id))))))

(defun fim-lsp--stop-timer ()
  (when (timerp fim-lsp--timer)
    (cancel-timer fim-lsp--timer))
  (setq fim-lsp--timer nil))

(defun fim-lsp-dismiss ()
  "Hide the suggestion and cancel the request in flight."
  (interactive)
  (fim-lsp--stop-timer)
  (fim-lsp--cancel)
  (fim-lsp--hide)
  (setq fim-lsp--items nil))

(defun fim-lsp--item-text (item)
  "The insertText of ITEM as a string (a snippet's text as is)."
  (let ((text (plist-get item :insertText)))
    (cond ((stringp text) text)
          ((and (listp text) (stringp (plist-get text :value))) (plist-get text :value)))))

(defun fim-lsp--range-region (range)
  "RANGE, an LSP range, as (BEG . END) buffer positions."
  (if (fboundp 'eglot-range-region)
      (eglot-range-region range)
    (eglot--range-region range)))

(defun fim-lsp--show ()
  "Show item number `fim-lsp--index' of `fim-lsp--items' after point."
  (fim-lsp--hide)
  (let* ((item (nth fim-lsp--index fim-lsp--items))
         (text (and item (fim-lsp--item-text item)))
         (range (and item (plist-get item :range)))
         (region (if range (fim-lsp--range-region range) (cons (point) (point))))
         (beg (car region))
         (end (cdr region)))
    (when (and text (<= beg (point)) (<= (point) end))
      (let* ((typed (buffer-substring-no-properties beg (point)))
             (ghost (and (string-prefix-p typed text) (substring text (length typed)))))
        (when (and ghost (not (string-empty-p ghost)))
          (let ((display (propertize ghost 'face 'fim-lsp-ghost-face))
                (overlay (make-overlay (point) (point) nil nil t)))
            (when (cdr fim-lsp--items)
              (setq display (concat display (propertize (format " (%d/%d)" (1+ fim-lsp--index)
                                                                (length fim-lsp--items))
                                                        'face 'shadow))))
            ;; Draw the cursor where the suggestion starts, not after it.
            (put-text-property 0 1 'cursor t display)
            (overlay-put overlay 'after-string display)
            (overlay-put overlay 'priority 1000)
            (overlay-put overlay 'fim-lsp t)
            (setq fim-lsp--overlay overlay
                  fim-lsp--active t
                  fim-lsp--shown (list :item item :text text :ghost ghost :beg beg :end end
                                       :point (point) :tick (buffer-chars-modified-tick)))))))))

(defun fim-lsp--shown-current-p ()
  "Non-nil if the shown suggestion still belongs where point and the text are."
  (and fim-lsp--shown
       (= (point) (plist-get fim-lsp--shown :point))
       (= (buffer-chars-modified-tick) (plist-get fim-lsp--shown :tick))))

(defun fim-lsp--on-result (buffer generation tick position result)
  "Show RESULT in BUFFER if nothing changed since the request of GENERATION."
  (when (buffer-live-p buffer)
    (with-current-buffer buffer
      (when (= generation fim-lsp--generation)
        (setq fim-lsp--pending nil)
        (when (and fim-lsp-inline-mode
                   (= tick (buffer-chars-modified-tick))
                   (= position (point)))
          (let ((items (if (vectorp result) result (plist-get result :items))))
            (setq fim-lsp--items (cl-remove-if-not #'fim-lsp--item-text (append items nil))
                  fim-lsp--index 0)
            (fim-lsp--show)))))))

(defun fim-lsp--request (buffer &optional invoked)
  "Ask the daemon for an inline completion at point in BUFFER.
INVOKED non-nil means the user asked explicitly."
  (when (buffer-live-p buffer)
    (with-current-buffer buffer
      (setq fim-lsp--timer nil)
      (let ((server (and fim-lsp-inline-mode (fim-lsp--server))))
        (when server
          (fim-lsp--cancel)
          ;; eglot sends didChange after its own idle delay: the daemon must see the text now.
          (eglot--signal-textDocument/didChange)
          (let* ((generation fim-lsp--generation)
                 (tick (buffer-chars-modified-tick))
                 (position (point))
                 (params (append (eglot--TextDocumentPositionParams)
                                 (list :context (list :triggerKind (if invoked 1 2)))))
                 (args (list :success-fn (lambda (result)
                                           (fim-lsp--on-result buffer generation tick position result))
                             :error-fn (lambda (&rest _)
                                         (fim-lsp--forget-request buffer generation))
                             :timeout-fn (lambda () (fim-lsp--forget-request buffer generation))
                             :timeout fim-lsp-request-timeout)))
            (if (fboundp 'jsonrpc--async-request-1)
                ;; The internal variant returns the request id, which cancelling needs.
                (let ((id-and-timer (apply #'jsonrpc--async-request-1 server
                                           :textDocument/inlineCompletion params args)))
                  (setq fim-lsp--pending (cons server (car id-and-timer))))
              (apply #'jsonrpc-async-request server :textDocument/inlineCompletion params args)
              (setq fim-lsp--pending (cons server nil)))))))))

(defun fim-lsp--forget-request (buffer generation)
  (when (buffer-live-p buffer)
    (with-current-buffer buffer
      (when (= generation fim-lsp--generation)
        (setq fim-lsp--pending nil)))))

;;;###autoload
(defun fim-lsp-complete ()
  "Ask for a suggestion at point now."
  (interactive)
  (fim-lsp--stop-timer)
  (fim-lsp--hide)
  (fim-lsp--request (current-buffer) t))

(defun fim-lsp--schedule ()
  "Ask for a suggestion after `fim-lsp-idle-delay' seconds of idle time."
  (fim-lsp--stop-timer)
  (setq fim-lsp--timer
        (run-with-idle-timer fim-lsp-idle-delay nil #'fim-lsp--request (current-buffer))))

(defun fim-lsp--after-change (&rest _)
  "Any edit hides the suggestion and cancels the request in flight."
  (when (or fim-lsp--shown fim-lsp--pending)
    (fim-lsp--hide)
    (fim-lsp--cancel)))

(defun fim-lsp--send-cursor (buffer)
  "Tell the daemon where the cursor of BUFFER is, so it warms that region's prompt."
  (when (and (buffer-live-p buffer) (eq buffer (current-buffer)))
    (let ((server (fim-lsp--server))
          (line (line-number-at-pos)))
      (when (and server (jsonrpc-running-p server)
                 (or (null fim-lsp--cursor-line)
                     (>= (abs (- line fim-lsp--cursor-line)) fim-lsp-cursor-lines)))
        (setq fim-lsp--cursor-line line)
        (jsonrpc-notify server :fim/didMoveCursor (eglot--TextDocumentPositionParams))))))

(defun fim-lsp--watch-cursor ()
  "Once the cursor settles (0.15 s), send it to the daemon if it moved far."
  (when (timerp fim-lsp--cursor-timer)
    (cancel-timer fim-lsp--cursor-timer))
  (setq fim-lsp--cursor-timer
        (run-with-idle-timer 0.15 nil #'fim-lsp--send-cursor (current-buffer))))

(defun fim-lsp--post-command ()
  "Hide a suggestion that no longer fits; after an edit, ask again once idle."
  (fim-lsp--watch-cursor)
  (when (and fim-lsp--shown (not (fim-lsp--shown-current-p)))
    (fim-lsp--hide))
  (let ((tick (buffer-chars-modified-tick)))
    (unless (eql tick fim-lsp--last-tick)
      (setq fim-lsp--last-tick tick)
      (unless (memq this-command '(fim-lsp-next fim-lsp-previous fim-lsp-dismiss))
        (fim-lsp--schedule)))))

(defun fim-lsp--fall-through ()
  "Run what the keys of this command do without `fim-lsp-active-map'."
  (fim-lsp--hide)
  (let* ((fim-lsp--active nil)
         (command (key-binding (this-command-keys-vector) t)))
    (when (and command (not (memq command fim-lsp--own-commands)))
      (setq this-command command)
      (call-interactively command))))

(defun fim-lsp--piece (ghost how)
  "The next word or line of GHOST (HOW is `word' or `line'), or all of it."
  (pcase how
    ('word (if (string-match "\\`\\(?:[[:space:]]*[[:alnum:]_]+\\|[[:space:]]*[^[:alnum:]_[:space:]]+\\|[[:space:]]+\\)"
                             ghost)
               (match-string 0 ghost)
             ghost))
    ('line (if (string-match "\\`\n?[^\n]*" ghost) (match-string 0 ghost) ghost))
    (_ ghost)))

(defun fim-lsp--accept (how)
  "Insert the shown suggestion, or its next word or line (HOW)."
  (if (not (fim-lsp--shown-current-p))
      (fim-lsp--fall-through)
    (let* ((shown fim-lsp--shown)
           (server (fim-lsp--server))
           (item (plist-get shown :item)))
      (fim-lsp--hide)
      (fim-lsp--cancel)
      (if (eq how 'all)
          (progn
            (delete-region (plist-get shown :beg) (plist-get shown :end))
            (goto-char (plist-get shown :beg))
            (insert (plist-get shown :text))
            (let ((command (plist-get item :command)))
              (when (and command server)
                (jsonrpc-async-request server :workspace/executeCommand
                                       (list :command (plist-get command :command)
                                             :arguments (or (plist-get command :arguments) []))
                                       :success-fn #'ignore :error-fn #'ignore
                                       :timeout-fn #'ignore))))
        (let ((piece (fim-lsp--piece (plist-get shown :ghost) how)))
          (insert piece)
          (when server
            (jsonrpc-notify server :textDocument/didPartiallyAcceptCompletion
                            (list :textDocument (eglot--TextDocumentIdentifier)
                                  :acceptedLength (length piece)))))))))

(defun fim-lsp-accept ()
  "Accept the suggestion; without one, do what the key does otherwise."
  (interactive)
  (fim-lsp--accept 'all))

(defun fim-lsp-accept-word ()
  "Accept the next word of the suggestion."
  (interactive)
  (fim-lsp--accept 'word))

(defun fim-lsp-accept-line ()
  "Accept the next line of the suggestion."
  (interactive)
  (fim-lsp--accept 'line))

(defun fim-lsp--cycle (step)
  (if (not (fim-lsp--shown-current-p))
      (fim-lsp--fall-through)
    (setq fim-lsp--index (mod (+ fim-lsp--index step) (length fim-lsp--items)))
    (fim-lsp--show)))

(defun fim-lsp-next ()
  "Show the next suggestion."
  (interactive)
  (fim-lsp--cycle 1))

(defun fim-lsp-previous ()
  "Show the previous suggestion."
  (interactive)
  (fim-lsp--cycle -1))

;;;###autoload
(define-minor-mode fim-lsp-inline-mode
  "Show fim-lsp's suggestions as ghost text while typing; TAB accepts.
While a suggestion is shown, `fim-lsp-active-map' is active:
\\{fim-lsp-active-map}"
  :lighter " fim"
  (if fim-lsp-inline-mode
      (progn
        (add-hook 'post-command-hook #'fim-lsp--post-command nil t)
        (add-hook 'after-change-functions #'fim-lsp--after-change nil t)
        (setq fim-lsp--last-tick (buffer-chars-modified-tick)))
    (remove-hook 'post-command-hook #'fim-lsp--post-command t)
    (remove-hook 'after-change-functions #'fim-lsp--after-change t)
    (fim-lsp-dismiss)))

(provide 'fim-lsp)
;;; fim-lsp.el ends here
