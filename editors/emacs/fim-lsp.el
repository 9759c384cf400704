;;; fim-lsp.el --- Local code completion as ghost text, from the fim-lsp daemon  -*- lexical-binding: t; -*-

;; Copyright (C) 2026 the fim-lsp authors
;; SPDX-License-Identifier: MIT

;; Author: the fim-lsp authors
;; Version: 0.2.0
;; Package-Requires: ((emacs "28.1") (jsonrpc "1.0.14"))
;; Keywords: tools, convenience, languages

;;; Commentary:

;; fim-lsp is a local code-completion daemon: a small code model answers LSP requests.
;; This file adds `fim-lsp-mode', which shows the daemon's suggestions as ghost text (an
;; overlay) after a short idle time.  TAB accepts a suggestion while one is shown, and
;; otherwise does what TAB always does; any other edit or move hides it, and typing
;; cancels the request in flight.
;;
;; The mode talks to the daemon over a connection of its own (the built-in jsonrpc.el),
;; beside whatever language server eglot or lsp-mode runs in the same buffer: loading this
;; file changes no eglot setting.  One daemon serves every buffer of the Emacs session.
;;
;; Minimal setup, with the repository cloned to ~/fim-lsp:
;;   (add-to-list 'load-path "~/fim-lsp/editors/emacs")
;;   (require 'fim-lsp)
;;   (add-hook 'python-mode-hook #'fim-lsp-mode)
;;
;; More commands to bind (they act while a suggestion is shown): `fim-lsp-accept-word',
;; `fim-lsp-accept-line', `fim-lsp-next', `fim-lsp-previous', `fim-lsp-dismiss'; e.g.
;;   (define-key fim-lsp-active-map (kbd "M-f") #'fim-lsp-accept-word)
;;
;; Opt-in: (fim-lsp-eglot-register 'python-mode) makes fim-lsp eglot's server for that mode
;; instead (its `completion-at-point' then goes through the daemon too); `fim-lsp-mode' in
;; such a buffer uses eglot's connection rather than a second daemon.

;;; Code:

(require 'cl-lib)
(require 'subr-x)
(require 'jsonrpc)
(require 'url-util)

;; Used only in buffers whose eglot server is fim-lsp (`fim-lsp-eglot-register'), where
;; eglot is loaded: this file never loads eglot itself.
(defvar eglot-server-programs)
(declare-function eglot-current-server "eglot")
(declare-function eglot--server-info "eglot")
(declare-function eglot--TextDocumentPositionParams "eglot")
(declare-function eglot--TextDocumentIdentifier "eglot")
(declare-function eglot--signal-textDocument/didChange "eglot")
(declare-function eglot--range-region "eglot")
(declare-function eglot-range-region "eglot")

(defgroup fim-lsp nil
  "Local code completion from the fim-lsp daemon."
  :group 'tools
  :prefix "fim-lsp-")

(defcustom fim-lsp-program nil
  "The fim-lsp executable.
nil means the .venv of the repository this file is in, else `fim-lsp'
on `exec-path', else ~/.local/bin/fim-lsp."
  :type '(choice (const :tag "Find it" nil) file))

(defcustom fim-lsp-options nil
  "Daemon options sent as initializationOptions.
A plist such as (:model \"qwen2.5-coder-1.5b\").  Takes effect when the
daemon starts (\\[fim-lsp-restart])."
  :type 'plist)

(defcustom fim-lsp-idle-delay 0.2
  "Seconds of idle time after an edit before asking for a suggestion."
  :type 'number)

(defcustom fim-lsp-request-timeout 60
  "Seconds to wait for the daemon's answer to one inline completion request."
  :type 'number)

(defcustom fim-lsp-events-buffer-size 0
  "How many characters of the daemon's messages to keep in *fim-lsp events*.
0 keeps none (the fastest); nil keeps all.  Takes effect when the daemon starts."
  :type '(choice (const :tag "All" nil) integer))

(defface fim-lsp-ghost-face '((t :inherit shadow))
  "Face of the suggestion shown after point.")

(defconst fim-lsp--directory
  (file-name-directory (file-truename (or load-file-name buffer-file-name default-directory)))
  "Where this file is: editors/emacs in the fim-lsp repository.")

(defconst fim-lsp--{} (make-hash-table) "An empty JSON object.")

(defun fim-lsp-program ()
  "The daemon executable to run."
  (or fim-lsp-program
      (let ((venv (expand-file-name "../../.venv/bin/fim-lsp" fim-lsp--directory)))
        (and (file-executable-p venv) venv))
      (executable-find "fim-lsp")
      ;; `make install' and pipx put it here, which a GUI Emacs's `exec-path' may lack.
      (let ((user (expand-file-name "~/.local/bin/fim-lsp")))
        (and (file-executable-p user) user))
      "fim-lsp"))

(defvar fim-lsp-mode)
(defvar fim-lsp--opened)

;;; The connection: one daemon for the whole Emacs session

(defvar fim-lsp--connection nil "The jsonrpc connection to our daemon, or nil.")
(defvar fim-lsp--ready nil "Non-nil once the daemon answered initialize.")
(defvar fim-lsp--encoding "utf-16"
  "The position encoding the daemon chose: \"utf-32\", \"utf-16\" or \"utf-8\".")
(defvar fim-lsp--buffers nil "Buffers in `fim-lsp-mode' that use our own connection.")
(defvar fim-lsp--stopping nil "Non-nil while `fim-lsp-shutdown' stops the daemon on purpose.")
(defvar fim-lsp--last-start 0 "When the daemon was last started (`float-time').")
(defconst fim-lsp--restart-interval 10
  "Seconds between two starts of a daemon that exits: a broken one must not loop.")
(defvar fim-lsp-last-progress nil
  "The last work-done progress message from the daemon, e.g. \"model ready\".")

(defun fim-lsp--initialize-params ()
  "What we tell the daemon about ourselves in initialize."
  `(:processId ,(emacs-pid)             ; the daemon exits when Emacs is gone
    :clientInfo (:name "Emacs fim-lsp.el" :version ,emacs-version)
    :rootUri nil
    :capabilities
    (:general (:positionEncodings ["utf-32" "utf-16"]) ; utf-32 columns are Emacs columns
     :window (:workDoneProgress t)                     ; model-loading progress
     :workspace (:configuration :json-false)           ; options come in initialize
     :textDocument (:synchronization (:dynamicRegistration :json-false)
                    :inlineCompletion (:dynamicRegistration :json-false)))
    ,@(when fim-lsp-options (list :initializationOptions fim-lsp-options))))

(defun fim-lsp--handle-request (_connection method _params)
  "Answer the daemon's requests to the editor (METHOD)."
  (pcase method
    ('window/workDoneProgress/create nil)
    ('client/registerCapability nil)
    ('window/showMessageRequest nil)
    (_ (jsonrpc-error :code -32601 :message (format "%s is not supported" method)))))

(defun fim-lsp--handle-notification (_connection method params)
  "Show the daemon's progress and messages (METHOD with PARAMS)."
  (pcase method
    ('$/progress
     (let* ((value (plist-get params :value))
            (text (or (plist-get value :message) (plist-get value :title))))
       (when text
         (setq fim-lsp-last-progress text)
         (let ((message-log-max nil))
           (message "fim-lsp: %s" text)))))
    ('window/showMessage
     (message "fim-lsp: %s" (plist-get params :message)))))

(defun fim-lsp--on-shutdown (connection)
  "CONNECTION's process ended: forget it.
The next buffer that needs a daemon starts another."
  (when (eq connection fim-lsp--connection)
    (setq fim-lsp--connection nil
          fim-lsp--ready nil)
    (dolist (buffer fim-lsp--buffers)
      (when (buffer-live-p buffer)
        (with-current-buffer buffer
          (fim-lsp-dismiss))))
    (unless fim-lsp--stopping
      (message "fim-lsp: the daemon exited; see the buffer *fim-lsp stderr*"))))

(defun fim-lsp--start ()
  "Start the daemon and send initialize; buffers are opened once it answers."
  (setq fim-lsp--last-start (float-time))
  (let* ((program (fim-lsp-program))
         ;; A local folder: a remote buffer's `default-directory' would run it on that host.
         (default-directory (expand-file-name "~/"))
         (connection
          (make-instance
           'jsonrpc-process-connection
           :name "fim-lsp"
           :events-buffer-scrollback-size fim-lsp-events-buffer-size
           :request-dispatcher #'fim-lsp--handle-request
           :notification-dispatcher #'fim-lsp--handle-notification
           :on-shutdown #'fim-lsp--on-shutdown
           :process (lambda ()
                      (make-process :name "fim-lsp" :command (list program "serve")
                                    :connection-type 'pipe :coding 'utf-8-emacs-unix
                                    :noquery t :file-handler nil
                                    :stderr (get-buffer-create "*fim-lsp stderr*"))))))
    (setq fim-lsp--connection connection
          fim-lsp--ready nil)
    (jsonrpc-async-request
     connection :initialize (fim-lsp--initialize-params)
     :success-fn (lambda (result) (fim-lsp--on-initialize connection result))
     :error-fn (lambda (error)
                 (message "fim-lsp: the daemon refused initialize: %s" (plist-get error :message)))
     :timeout-fn (lambda () (message "fim-lsp: the daemon did not answer initialize"))
     :timeout 60)
    connection))

(defun fim-lsp--on-initialize (connection result)
  "CONNECTION answered initialize with RESULT: open the buffers waiting for it."
  (when (and (eq connection fim-lsp--connection) (jsonrpc-running-p connection))
    (setq fim-lsp--encoding (or (plist-get (plist-get result :capabilities) :positionEncoding)
                                "utf-16")
          fim-lsp--ready t)
    (jsonrpc-notify connection :initialized fim-lsp--{})
    (dolist (buffer fim-lsp--buffers)
      (when (buffer-live-p buffer)
        (with-current-buffer buffer
          (fim-lsp--did-open))))))

(defun fim-lsp--ensure-connection ()
  "Our connection, started if need be; nil if the daemon cannot start."
  (if (and fim-lsp--connection (jsonrpc-running-p fim-lsp--connection))
      fim-lsp--connection
    (condition-case error
        (fim-lsp--start)
      (error
       (setq fim-lsp--connection nil)
       (message "fim-lsp: cannot start %s: %s (set `fim-lsp-program')"
                (fim-lsp-program) (error-message-string error))
       nil))))

(defun fim-lsp-shutdown ()
  "Stop the daemon.
A buffer in `fim-lsp-mode' starts it again when it needs it."
  (interactive)
  (let ((connection fim-lsp--connection)
        (fim-lsp--stopping t))
    (when connection
      (when (jsonrpc-running-p connection)
        (ignore-errors (jsonrpc-request connection :shutdown nil :timeout 5))
        (ignore-errors (jsonrpc-notify connection :exit nil))
        (jsonrpc-shutdown connection))
      (fim-lsp--on-shutdown connection))))

(defun fim-lsp-restart ()
  "Restart the daemon and reopen the buffers (e.g. for new `fim-lsp-options')."
  (interactive)
  (fim-lsp-shutdown)
  (dolist (buffer fim-lsp--buffers)
    (when (buffer-live-p buffer)
      (with-current-buffer buffer
        (setq fim-lsp--opened nil))))
  (when fim-lsp--buffers
    (fim-lsp--ensure-connection)))

;;; Positions in the negotiated encoding

(defun fim-lsp--units (string)
  "The length of STRING in the daemon's position encoding."
  (pcase fim-lsp--encoding
    ("utf-32" (length string))
    ("utf-8" (string-bytes (encode-coding-string string 'utf-8 t)))
    (_ (+ (length string) (cl-count-if (lambda (char) (> char #xFFFF)) string)))))

(defun fim-lsp--position (&optional pos)
  "POS (default point) as an LSP position: line and column, ignoring narrowing."
  (save-restriction
    (widen)
    (save-excursion
      (when pos (goto-char pos))
      (list :line (1- (line-number-at-pos nil t))
            :character (fim-lsp--units
                        (buffer-substring-no-properties (line-beginning-position) (point)))))))

(defun fim-lsp--point-at (position)
  "The buffer position of POSITION, an LSP position (clamped to its line)."
  (save-restriction
    (widen)
    (save-excursion
      (goto-char (point-min))
      (forward-line (plist-get position :line))
      (let ((left (plist-get position :character))
            (eol (line-end-position)))
        (if (equal fim-lsp--encoding "utf-32")
            (min eol (+ (point) left))
          (while (and (> left 0) (< (point) eol))
            (setq left (- left (fim-lsp--units (string (char-after)))))
            (forward-char))
          (point))))))

;;; Documents

(defvar-local fim-lsp--opened nil "The connection this buffer was opened on, or nil.")
(defvar-local fim-lsp--uri nil "The URI the daemon knows this buffer by.")
(defvar-local fim-lsp--version 0)
(defvar-local fim-lsp--changes nil "Edits not yet sent, newest first.")
(defvar-local fim-lsp--full-sync nil "Non-nil if the next didChange must send the whole text.")
(defvar-local fim-lsp--synced-tick nil "`buffer-chars-modified-tick' when last sent.")
(defvar-local fim-lsp--before-change nil "(BEG END START-POSITION END-POSITION) of an edit.")

(defconst fim-lsp--language-ids
  '((c++-mode . "cpp") (c++-ts-mode . "cpp") (js-mode . "javascript") (js-ts-mode . "javascript")
    (js2-mode . "javascript") (typescript-ts-mode . "typescript") (tsx-ts-mode . "typescriptreact")
    (sh-mode . "shellscript") (bash-ts-mode . "shellscript") (emacs-lisp-mode . "elisp"))
  "languageIds that are not the major mode's name less -mode or -ts-mode.")

(defun fim-lsp--language-id ()
  "The LSP languageId of this buffer's major mode."
  (or (alist-get major-mode fim-lsp--language-ids)
      (replace-regexp-in-string "\\(?:-ts\\)?-mode\\'" "" (symbol-name major-mode))))

(defun fim-lsp--make-uri ()
  "A URI for this buffer: its file's, or an untitled: one."
  (if buffer-file-name
      (concat "file://" (url-hexify-string (file-truename buffer-file-name) url-path-allowed-chars))
    (concat "untitled:" (url-hexify-string (buffer-name)))))

(defun fim-lsp--opened-p ()
  "Non-nil if this buffer is open on our live connection."
  (and fim-lsp--opened (eq fim-lsp--opened fim-lsp--connection)))

(defun fim-lsp--did-open ()
  "Send this buffer's text to the daemon (once the connection is ready)."
  (when (and fim-lsp--ready fim-lsp--connection (not (fim-lsp--opened-p)))
    (setq fim-lsp--uri (or fim-lsp--uri (fim-lsp--make-uri))
          fim-lsp--version 0
          fim-lsp--changes nil
          fim-lsp--full-sync nil
          fim-lsp--before-change nil
          fim-lsp--synced-tick (buffer-chars-modified-tick)
          fim-lsp--opened fim-lsp--connection)
    (jsonrpc-notify fim-lsp--connection :textDocument/didOpen
                    (list :textDocument
                          (list :uri fim-lsp--uri :languageId (fim-lsp--language-id) :version 0
                                :text (save-restriction
                                        (widen)
                                        (buffer-substring-no-properties (point-min) (point-max))))))))

(defun fim-lsp--did-close ()
  "Tell the daemon this buffer is gone."
  (when (fim-lsp--opened-p)
    (jsonrpc-notify fim-lsp--connection :textDocument/didClose
                    (list :textDocument (list :uri fim-lsp--uri))))
  (setq fim-lsp--opened nil))

(defun fim-lsp--before-change (beg end)
  "Note where the text BEG..END is, in LSP positions, before it changes."
  (when (fim-lsp--opened-p)
    (setq fim-lsp--before-change
          (list beg end (fim-lsp--position beg) (fim-lsp--position end)))))

(defun fim-lsp--record-change (beg end old-length)
  "Queue the edit that replaced OLD-LENGTH characters at BEG with BEG..END."
  (when (fim-lsp--opened-p)
    (let ((before fim-lsp--before-change))
      (setq fim-lsp--before-change nil)
      (if (and before (= beg (nth 0 before)) (= (+ beg old-length) (nth 1 before)))
          (push (list :range (list :start (nth 2 before) :end (nth 3 before))
                      :text (buffer-substring-no-properties beg end))
                fim-lsp--changes)
        ;; The before and after calls do not describe one edit: send the whole text.
        (setq fim-lsp--full-sync t)))))

(defun fim-lsp--flush ()
  "Send the edits not yet sent in one didChange."
  (when (fim-lsp--opened-p)
    (let ((tick (buffer-chars-modified-tick)))
      (when (or fim-lsp--changes fim-lsp--full-sync (not (eql tick fim-lsp--synced-tick)))
        (let ((changes
               ;; An edit made with the change hooks off leaves the tick moved, no record.
               (if (or fim-lsp--full-sync (null fim-lsp--changes) (> (length fim-lsp--changes) 100))
                   (vector (list :text (save-restriction
                                         (widen)
                                         (buffer-substring-no-properties (point-min) (point-max)))))
                 (vconcat (reverse fim-lsp--changes)))))
          (cl-incf fim-lsp--version)
          (jsonrpc-notify fim-lsp--connection :textDocument/didChange
                          (list :textDocument (list :uri fim-lsp--uri :version fim-lsp--version)
                                :contentChanges changes)))
        (setq fim-lsp--changes nil
              fim-lsp--full-sync nil
              fim-lsp--synced-tick tick)))))

;;; Which connection a buffer uses

(defvar fim-lsp--eglot-modes nil "Modes that `fim-lsp-eglot-register' gave to eglot.")

(defun fim-lsp--via-eglot-p ()
  "Non-nil if this buffer's mode runs fim-lsp as its eglot server (the opt-in)."
  (and fim-lsp--eglot-modes (apply #'derived-mode-p fim-lsp--eglot-modes)))

(defun fim-lsp--eglot-server ()
  "The eglot server of this buffer, if it runs fim-lsp."
  (when (and (featurep 'eglot) (fim-lsp--via-eglot-p))
    (let ((server (ignore-errors (eglot-current-server))))
      (and server
           (equal (ignore-errors (plist-get (eglot--server-info server) :name)) "fim-lsp")
           server))))

(defun fim-lsp--buffer-connection ()
  "The connection for this buffer's requests, with its text sent; nil if not ready."
  (if (fim-lsp--via-eglot-p)
      (let ((server (fim-lsp--eglot-server)))
        ;; eglot sends didChange after an idle delay of its own: the daemon needs the text now.
        (when server (eglot--signal-textDocument/didChange))
        server)
    (cond ((fim-lsp--opened-p)
           (fim-lsp--flush)
           fim-lsp--connection)
          (fim-lsp--ready
           (fim-lsp--did-open)
           nil)
          ((and (not (and fim-lsp--connection (jsonrpc-running-p fim-lsp--connection)))
                (> (- (float-time) fim-lsp--last-start) fim-lsp--restart-interval))
           ;; The daemon exited: start another, which opens this buffer when it is up.
           (fim-lsp--ensure-connection)
           nil))))

(defun fim-lsp--text-document ()
  "This buffer's TextDocumentIdentifier."
  (if (fim-lsp--via-eglot-p)
      (eglot--TextDocumentIdentifier)
    (list :uri fim-lsp--uri)))

(defun fim-lsp--position-params ()
  "TextDocumentPositionParams at point."
  (if (fim-lsp--via-eglot-p)
      (eglot--TextDocumentPositionParams)
    (list :textDocument (fim-lsp--text-document) :position (fim-lsp--position))))

(defun fim-lsp--range-region (range)
  "RANGE, an LSP range, as (BEG . END) buffer positions."
  (cond ((not (fim-lsp--via-eglot-p))
         (cons (fim-lsp--point-at (plist-get range :start))
               (fim-lsp--point-at (plist-get range :end))))
        ((fboundp 'eglot-range-region) (eglot-range-region range))
        (t (eglot--range-region range))))

;;; Status

;;;###autoload
(defun fim-lsp-status ()
  "Show the daemon's fim/status and return it as a plist."
  (interactive)
  (let ((connection (or (and fim-lsp-mode (fim-lsp--eglot-server))
                        (and fim-lsp--ready fim-lsp--connection))))
    (unless connection
      (user-error (if fim-lsp--connection
                      "fim-lsp is starting"
                    "fim-lsp is not running (turn on `fim-lsp-mode' in a buffer)")))
    (let* ((status (jsonrpc-request connection :fim/status fim-lsp--{}))
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

(defvar-local fim-lsp--shown nil
  "The suggestion on screen: a plist (:item :text :ghost :beg :end :point :tick).")
(defvar-local fim-lsp--overlay nil)
(defvar-local fim-lsp--items nil "The items of the last answer, a list.")
(defvar-local fim-lsp--index 0)
(defvar-local fim-lsp--timer nil)
(defvar-local fim-lsp--pending nil "(CONNECTION . ID) of the request in flight.")
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
    map)
  "Keys that act on the suggestion; active only while one is shown.
Only TAB by default, so no other key changes meaning; bind more here, e.g.
  (define-key fim-lsp-active-map (kbd \"M-f\") #\\='fim-lsp-accept-word)")

;; A keymap of `emulation-mode-map-alists' takes precedence over the major and minor
;; modes' maps, and this one is active only while `fim-lsp--active' is set in the buffer.
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
    (let ((connection (car fim-lsp--pending))
          (id (cdr fim-lsp--pending)))
      (setq fim-lsp--pending nil)
      (when (and id (jsonrpc-running-p connection))
        (push id fim-lsp-cancelled-ids)
        (when (> (length fim-lsp-cancelled-ids) 20)
          (setcdr (nthcdr 19 fim-lsp-cancelled-ids) nil))
        (jsonrpc-notify connection :$/cancelRequest (list :id id))))))

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
        (when (and fim-lsp-mode
                   (= tick (buffer-chars-modified-tick))
                   (= position (point)))
          (let ((items (if (vectorp result) result (plist-get result :items))))
            (setq fim-lsp--items (cl-remove-if-not #'fim-lsp--item-text (append items nil))
                  fim-lsp--index 0)
            (fim-lsp--show)))))))

(defun fim-lsp--forget-request (buffer generation)
  (when (buffer-live-p buffer)
    (with-current-buffer buffer
      (when (= generation fim-lsp--generation)
        (setq fim-lsp--pending nil)))))

(defun fim-lsp--request (buffer &optional invoked)
  "Ask the daemon for an inline completion at point in BUFFER.
INVOKED non-nil means the user asked explicitly."
  (when (buffer-live-p buffer)
    (with-current-buffer buffer
      (setq fim-lsp--timer nil)
      (let ((connection (and fim-lsp-mode (fim-lsp--buffer-connection))))
        (when connection
          (fim-lsp--cancel)
          (let* ((generation fim-lsp--generation)
                 (tick (buffer-chars-modified-tick))
                 (position (point))
                 (params (append (fim-lsp--position-params)
                                 (list :context (list :triggerKind (if invoked 1 2)))))
                 (args (list :success-fn (lambda (result)
                                           (fim-lsp--on-result buffer generation tick position result))
                             :error-fn (lambda (&rest _) (fim-lsp--forget-request buffer generation))
                             :timeout-fn (lambda () (fim-lsp--forget-request buffer generation))
                             :timeout fim-lsp-request-timeout)))
            (if (fboundp 'jsonrpc--async-request-1)
                ;; The internal variant returns the request id, which cancelling needs.
                (let ((id-and-timer (apply #'jsonrpc--async-request-1 connection
                                           :textDocument/inlineCompletion params args)))
                  (setq fim-lsp--pending (cons connection (car-safe id-and-timer))))
              (apply #'jsonrpc-async-request connection :textDocument/inlineCompletion params args)
              (setq fim-lsp--pending (cons connection nil)))))))))

;;;###autoload
(defun fim-lsp-complete ()
  "Ask for a suggestion at point now."
  (interactive)
  (unless fim-lsp-mode
    (fim-lsp-mode 1))
  (fim-lsp--stop-timer)
  (fim-lsp--hide)
  (unless (fim-lsp--request (current-buffer) t)
    (message "fim-lsp: the daemon is not ready yet")))

(defun fim-lsp--schedule ()
  "Ask for a suggestion after `fim-lsp-idle-delay' seconds of idle time."
  (fim-lsp--stop-timer)
  (setq fim-lsp--timer
        (run-with-idle-timer fim-lsp-idle-delay nil #'fim-lsp--request (current-buffer))))

(defun fim-lsp--after-change (beg end old-length)
  "Record the edit BEG END OLD-LENGTH.
An edit hides the suggestion and cancels the request in flight."
  (fim-lsp--record-change beg end old-length)
  (when (or fim-lsp--shown fim-lsp--pending)
    (fim-lsp--hide)
    (fim-lsp--cancel)))

(defun fim-lsp--send-cursor (buffer)
  "Tell the daemon where the cursor of BUFFER is, so it warms that region's prompt."
  (when (and (buffer-live-p buffer) (eq buffer (current-buffer)) fim-lsp-mode)
    (let ((line (line-number-at-pos nil t)))
      (when (or (null fim-lsp--cursor-line)
                (>= (abs (- line fim-lsp--cursor-line)) fim-lsp-cursor-lines))
        (let ((connection (fim-lsp--buffer-connection)))
          (when (and connection (jsonrpc-running-p connection))
            (setq fim-lsp--cursor-line line)
            (jsonrpc-notify connection :fim/didMoveCursor (fim-lsp--position-params))))))))

(defun fim-lsp--watch-cursor ()
  "Once the cursor settles (0.15 s), send it to the daemon if it moved far."
  (when (timerp fim-lsp--cursor-timer)
    (cancel-timer fim-lsp--cursor-timer))
  (setq fim-lsp--cursor-timer
        (run-with-idle-timer 0.15 nil #'fim-lsp--send-cursor (current-buffer))))

(defun fim-lsp--post-command ()
  "Send the command's edits and hide a suggestion that no longer fits.
After an edit, ask again once idle."
  (fim-lsp--flush)
  (fim-lsp--watch-cursor)
  (when (and fim-lsp--shown
             (or (not (fim-lsp--shown-current-p))
                 ;; C-g: what a user presses to be rid of it, without binding C-g.
                 (eq this-command 'keyboard-quit)))
    (fim-lsp-dismiss))
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
           (item (plist-get shown :item)))
      (fim-lsp--hide)
      (fim-lsp--cancel)
      (if (eq how 'all)
          (progn
            (delete-region (plist-get shown :beg) (plist-get shown :end))
            (goto-char (plist-get shown :beg))
            (insert (plist-get shown :text))
            (let ((command (plist-get item :command))
                  (connection (fim-lsp--buffer-connection)))
              (when (and command connection)
                (jsonrpc-async-request connection :workspace/executeCommand
                                       (list :command (plist-get command :command)
                                             :arguments (or (plist-get command :arguments) []))
                                       :success-fn #'ignore :error-fn #'ignore
                                       :timeout-fn #'ignore))))
        (let ((piece (fim-lsp--piece (plist-get shown :ghost) how)))
          (insert piece)
          (let ((connection (fim-lsp--buffer-connection)))
            (when connection
              (jsonrpc-notify connection :textDocument/didPartiallyAcceptCompletion
                              (list :textDocument (fim-lsp--text-document)
                                    :acceptedLength (length piece))))))))))

(defun fim-lsp-accept ()
  "Accept the suggestion; without one, do what the key does otherwise."
  (interactive)
  (fim-lsp--accept 'all))

(defun fim-lsp-accept-word ()
  "Accept the next word of the suggestion.
Without one, do what the key does otherwise."
  (interactive)
  (fim-lsp--accept 'word))

(defun fim-lsp-accept-line ()
  "Accept the next line of the suggestion.
Without one, do what the key does otherwise."
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

;;; The mode

(defun fim-lsp--turn-off ()
  "Turn the mode off (the buffer is killed or changes its major mode)."
  (fim-lsp-mode -1))

;;;###autoload
(define-minor-mode fim-lsp-mode
  "Show fim-lsp's suggestions as ghost text while typing; TAB accepts.
The buffer is sent to the fim-lsp daemon over a connection of its own,
one daemon for all buffers, beside any language server eglot runs here.
While a suggestion is shown, `fim-lsp-active-map' is active:
\\{fim-lsp-active-map}"
  :lighter " fim"
  (if fim-lsp-mode
      (progn
        (add-hook 'post-command-hook #'fim-lsp--post-command nil t)
        (add-hook 'after-change-functions #'fim-lsp--after-change nil t)
        (add-hook 'kill-buffer-hook #'fim-lsp--turn-off nil t)
        (add-hook 'change-major-mode-hook #'fim-lsp--turn-off nil t)
        (setq fim-lsp--last-tick (buffer-chars-modified-tick)
              fim-lsp--cursor-line nil)
        (unless (fim-lsp--via-eglot-p)
          (add-hook 'before-change-functions #'fim-lsp--before-change nil t)
          (cl-pushnew (current-buffer) fim-lsp--buffers)
          (when (fim-lsp--ensure-connection)
            (fim-lsp--did-open))))
    (remove-hook 'post-command-hook #'fim-lsp--post-command t)
    (remove-hook 'after-change-functions #'fim-lsp--after-change t)
    (remove-hook 'before-change-functions #'fim-lsp--before-change t)
    (remove-hook 'kill-buffer-hook #'fim-lsp--turn-off t)
    (remove-hook 'change-major-mode-hook #'fim-lsp--turn-off t)
    (fim-lsp-dismiss)
    (fim-lsp--did-close)
    (setq fim-lsp--buffers (delq (current-buffer) fim-lsp--buffers))))

;;;###autoload
(define-obsolete-function-alias 'fim-lsp-inline-mode #'fim-lsp-mode "0.2.0")
;;;###autoload
(define-obsolete-function-alias 'fim-lsp-ensure #'fim-lsp-mode "0.2.0"
  "Version 0.1 started fim-lsp through eglot; it now runs beside eglot.")

;;; Opt-in: fim-lsp as eglot's server

(defun fim-lsp--eglot-contact (&optional _interactive)
  "The eglot contact for the daemon."
  `(,(fim-lsp-program) "serve"
    ,@(when fim-lsp-options (list :initializationOptions fim-lsp-options))))

;;;###autoload
(defun fim-lsp-eglot-register (&rest modes)
  "Make fim-lsp the eglot server of MODES.
For example (fim-lsp-eglot-register \\='python-mode).
eglot runs one server per buffer: in MODES fim-lsp takes the place of
the one eglot would start (pylsp for Python, ...), and
`completion-at-point' offers the daemon's completion.  `fim-lsp-mode'
in such a buffer uses eglot's connection for its ghost text."
  (dolist (mode modes)
    (cl-pushnew mode fim-lsp--eglot-modes))
  (with-eval-after-load 'eglot
    (dolist (mode modes)
      (unless (equal (assq mode eglot-server-programs) (cons mode #'fim-lsp--eglot-contact))
        (push (cons mode #'fim-lsp--eglot-contact) eglot-server-programs)))))

(provide 'fim-lsp)
;;; fim-lsp.el ends here
