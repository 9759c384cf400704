;;; fim-lsp-test.el --- ERT tests of fim-lsp.el against the real daemon, model and pylsp  -*- lexical-binding: t; -*-

;;; Commentary:

;; Run by tests/editors/test_emacs.py in batch mode, with HOME set up as the README says and
;; ~/.emacs.d/init.el a user's config: eglot with pylsp in Python buffers (the user's own
;; language server), then the README's snippet (editors/emacs/example/init.el):
;;   emacs --batch -l ~/.emacs.d/init.el -l fim-lsp-test.el -f ert-run-tests-batch-and-exit
;; This file also loads the README's optional key lines (editors/emacs/example/keys.el).
;; $FIM_LSP_TEST_FILE is the fixture: typing "num" at the end of its third line has one
;; right completion, "number % 2 == 0".  Keys are pressed with `execute-kbd-macro', which
;; runs the real command loop hooks.  Batch Emacs never goes idle, so where the tests need
;; the idle request they run the idle timer the typing scheduled.

;;; Code:

(require 'ert)
(require 'subr-x)
(require 'eglot)
(require 'fim-lsp)

(load (expand-file-name "../example/keys.el"
                        (file-name-directory (or load-file-name buffer-file-name)))
      nil t)

(defconst fim-lsp-test--line 3 "The fixture's line where the tests type.")
(defconst fim-lsp-test--typed "    return num")

(defvar fim-lsp-test--buffer nil)

(defun fim-lsp-test--wait (predicate what &optional timeout)
  "Wait until PREDICATE returns non-nil, and return that value.
Fail naming WHAT after TIMEOUT seconds (default 120)."
  (let ((deadline (+ (float-time) (or timeout 120)))
        value)
    (while (and (not (setq value (funcall predicate)))
                (< (float-time) deadline))
      (accept-process-output nil 0.05))
    (or value
        (ert-fail (list (format "timed out after %ss waiting for %s" (or timeout 120) what)
                        :line (fim-lsp-test--current-line)
                        :status (ignore-errors
                                  (let ((status (fim-lsp-test--status)))
                                    (list :reason (plist-get status :lastNoSuggestionReason)
                                          :last-request (plist-get status :lastRequest)
                                          :counters (plist-get status :counters)))))))))

(defun fim-lsp-test--current-line ()
  (save-excursion
    (goto-char (point-min))
    (forward-line (1- fim-lsp-test--line))
    (buffer-substring-no-properties (line-beginning-position) (line-end-position))))

(defun fim-lsp-test--status ()
  (jsonrpc-request fim-lsp--connection :fim/status fim-lsp--{}))

(defun fim-lsp-test--eglot-name ()
  "The name eglot's server in this buffer gives itself."
  (plist-get (eglot--server-info (eglot--current-server-or-lose)) :name))

(defun fim-lsp-test--hover ()
  "eglot's server's hover text on the fixture's function name, or nil."
  (save-excursion
    (goto-char (point-min))
    (search-forward "is_ev")
    (let* ((result (jsonrpc-request (eglot--current-server-or-lose) :textDocument/hover
                                    (eglot--TextDocumentPositionParams)))
           (contents (plist-get result :contents)))
      (cond ((stringp contents) contents)
            ((plist-get contents :value))
            ((vectorp contents) (format "%S" contents))))))

(defun fim-lsp-test--open ()
  "Visit the fixture once, as a user would, and wait until both servers are up."
  (unless (buffer-live-p fim-lsp-test--buffer)
    (let ((file (or (getenv "FIM_LSP_TEST_FILE") (error "FIM_LSP_TEST_FILE is not set"))))
      (setq fim-lsp-test--buffer (find-file-noselect file))
      (switch-to-buffer fim-lsp-test--buffer)
      (should (eq major-mode 'python-mode))
      (should fim-lsp-mode)             ; turned on by the snippet's hook
      ;; `eglot-ensure' (the user's hook) connects when the command that visited the file ends.
      (run-hooks 'post-command-hook)
      (fim-lsp-test--wait #'eglot-current-server "eglot to connect (pylsp)" 60)
      (fim-lsp-test--wait (lambda () fim-lsp--ready) "the daemon to answer initialize" 60)
      (fim-lsp-test--wait (lambda () (member (plist-get (fim-lsp-test--status) :state) '("ready" "error")))
                          "the model to load" 300)
      (should (equal (plist-get (fim-lsp-test--status) :state) "ready"))))
  (switch-to-buffer fim-lsp-test--buffer))

(defun fim-lsp-test--type ()
  "Restore the fixture text, go to the end of its third line and type \"num\"."
  (fim-lsp-test--open)
  (fim-lsp-dismiss)
  (let ((file (buffer-file-name)))
    (erase-buffer)
    (insert-file-contents file))
  (goto-char (point-min))
  (forward-line (1- fim-lsp-test--line))
  (end-of-line)
  (execute-kbd-macro "num")
  (should (equal (fim-lsp-test--current-line) fim-lsp-test--typed)))

(defun fim-lsp-test--run-idle-timer ()
  "Run the idle request that the last edit scheduled (batch Emacs is never idle)."
  (let ((timer fim-lsp--timer))
    (should (timerp timer))
    (should (memq timer timer-idle-list))
    (should (eq (timer--function timer) #'fim-lsp--request))
    (timer-event-handler timer)))

(defun fim-lsp-test--wait-ghost ()
  "Run the scheduled request and wait for the ghost text; return it."
  (fim-lsp-test--run-idle-timer)
  (let ((shown (fim-lsp-test--wait (lambda () fim-lsp--shown) "ghost text")))
    (should (overlayp fim-lsp--overlay))
    (should (equal (substring-no-properties (overlay-get fim-lsp--overlay 'after-string))
                   (plist-get shown :ghost)))
    (should (eq (get-text-property 0 'face (overlay-get fim-lsp--overlay 'after-string))
                'fim-lsp-ghost-face))
    (plist-get shown :ghost)))

(ert-deftest fim-lsp-test-beside-pylsp ()
  "eglot runs pylsp in the buffer; fim-lsp runs its own daemon beside it."
  (fim-lsp-test--open)
  (should (equal (fim-lsp-test--eglot-name) "pylsp"))
  (let ((eglot-command (process-command (jsonrpc--process (eglot--current-server-or-lose))))
        (our-command (process-command (jsonrpc--process fim-lsp--connection))))
    (should (string-suffix-p "/pylsp" (car eglot-command)))
    (should (string-suffix-p "/.venv/bin/fim-lsp" (car our-command)))
    (should (equal (cdr our-command) '("serve"))))
  (should (string-match-p "is_even" (or (fim-lsp-test--hover) ""))))

(ert-deftest fim-lsp-test-tab-accepts-ghost-text ()
  (fim-lsp-test--type)
  (let ((done nil))
    ;; A suggestion cut short by the daemon's time budget is accepted and followed by the next.
    (dotimes (_ 6)
      (unless done
        (let ((ghost (fim-lsp-test--wait-ghost))
              (before (fim-lsp-test--current-line)))
          (should (eq (key-binding (kbd "TAB")) #'fim-lsp-accept))
          (execute-kbd-macro (kbd "TAB"))
          (should-not fim-lsp--overlay)
          (unless (string-match-p "\n" ghost)
            (should (equal (fim-lsp-test--current-line) (concat before ghost))))
          (setq done (string-match-p "% 2 == 0" (fim-lsp-test--current-line))))))
    (should done)
    (should (string-prefix-p "    return number" (fim-lsp-test--current-line))))
  ;; The accept command reached the daemon, and pylsp still serves this buffer, edits included.
  (fim-lsp-test--wait (lambda () (> (or (plist-get (plist-get (fim-lsp-test--status) :counters) :accepted) 0) 0))
                      "the daemon to count the accepted suggestion" 10)
  (should (equal (fim-lsp-test--eglot-name) "pylsp"))
  (eglot--signal-textDocument/didChange)
  (should (string-match-p "is_even" (or (fim-lsp-test--hover) ""))))

(ert-deftest fim-lsp-test-accept-word-then-line ()
  "The README's optional keys: M-f takes a word, C-e a line."
  (fim-lsp-test--type)
  (let* ((ghost (fim-lsp-test--wait-ghost))
         (word (progn (should (string-match "\\`[[:space:]]*[[:alnum:]_]+" ghost))
                      (match-string 0 ghost))))
    (execute-kbd-macro (kbd "M-f"))
    (should (equal (fim-lsp-test--current-line) (concat fim-lsp-test--typed word)))
    (let ((after-word (fim-lsp-test--current-line))
          (ghost (fim-lsp-test--wait-ghost)))
      (execute-kbd-macro (kbd "C-e"))
      (should (equal (fim-lsp-test--current-line)
                     (concat after-word (car (split-string ghost "\n"))))))))

(ert-deftest fim-lsp-test-edit-dismisses-and-tab-falls-through ()
  (fim-lsp-test--type)
  (fim-lsp-test--wait-ghost)
  (execute-kbd-macro "x")
  (should-not fim-lsp--shown)
  (should-not (cl-some (lambda (o) (overlay-get o 'fim-lsp)) (overlays-in (point-min) (point-max))))
  (should (equal (fim-lsp-test--current-line) (concat fim-lsp-test--typed "x")))
  ;; Nothing shown: TAB, C-e and M-f are python-mode's and Emacs's own commands again.
  (should (eq (key-binding (kbd "TAB")) #'indent-for-tab-command))
  (should (eq (key-binding (kbd "C-e")) #'move-end-of-line))
  (should (eq (key-binding (kbd "M-f")) #'forward-word))
  ;; TAB indents as usual: from column 0 back to the block's indentation, no suggestion.
  (beginning-of-line)
  (delete-horizontal-space)
  (execute-kbd-macro (kbd "TAB"))
  (should (equal (fim-lsp-test--current-line) (concat fim-lsp-test--typed "x"))))

(ert-deftest fim-lsp-test-dismiss-command ()
  (fim-lsp-test--type)
  (fim-lsp-test--wait-ghost)
  (should fim-lsp--active)
  (fim-lsp-dismiss)
  (should-not fim-lsp--shown)
  (should-not fim-lsp--active)
  (should-not (cl-some (lambda (o) (overlay-get o 'fim-lsp)) (overlays-in (point-min) (point-max))))
  (should (equal (fim-lsp-test--current-line) fim-lsp-test--typed)))

(ert-deftest fim-lsp-test-typing-cancels-the-request ()
  (fim-lsp-test--type)
  (fim-lsp-test--run-idle-timer)
  (let* ((pending fim-lsp--pending)
         (connection (car pending))
         (id (cdr pending)))
    (should (eq connection fim-lsp--connection))
    (should (integerp id))
    (execute-kbd-macro "b")             ; before the answer could be read
    (should-not fim-lsp--pending)
    (should (memq id fim-lsp-cancelled-ids))
    ;; The daemon answers the cancelled request (result or error); the answer is dropped.
    (fim-lsp-test--wait (lambda () (not (gethash id (jsonrpc--request-continuations connection))))
                        "the answer to the cancelled request")
    (should-not fim-lsp--shown)
    (should (equal (fim-lsp-test--current-line) (concat fim-lsp-test--typed "b")))))

(defconst fim-lsp-test--multi-line-text
  (concat "def count_evens(numbers):\n"
          "    \"\"\"Return how many of the numbers are even.\"\"\"\n"
          "    count = 0\n"
          "    for number in number\n"
          "    return count\n")
  "A loop header whose body is empty: typing the last \"s\" gets the header's rest and a body.")

(defun fim-lsp-test--line-at (line)
  "The text of LINE (1-based) of the current buffer."
  (save-excursion
    (goto-char (point-min))
    (forward-line (1- line))
    (buffer-substring-no-properties (line-beginning-position) (line-end-position))))

(ert-deftest fim-lsp-test-multi-line-accept-line-then-all ()
  "A multi-line suggestion is one ghost text; C-e takes its first line, TAB the rest."
  (fim-lsp-test--open)
  (fim-lsp-dismiss)
  (erase-buffer)
  (insert fim-lsp-test--multi-line-text)
  (goto-char (point-min))
  (forward-line 3)
  (end-of-line)
  (execute-kbd-macro "s")
  (let* ((header "    for number in numbers")
         (ghost (fim-lsp-test--wait-ghost))
         (first (car (split-string ghost "\n"))))
    (should (equal (fim-lsp-test--line-at 4) header))
    (should (string-match-p "\n" ghost))
    (should (string-prefix-p ":" first))
    ;; One line: the header is finished, the body is not in the buffer yet.
    (execute-kbd-macro (kbd "C-e"))
    (should (equal (fim-lsp-test--line-at 4) (concat header first)))
    (should (equal (fim-lsp-test--line-at 5) "    return count"))
    ;; The rest shows again as one ghost text; TAB inserts exactly what was shown.
    (let* ((rest (fim-lsp-test--wait-ghost))
           (expected (split-string (concat header first rest) "\n")))
      (should (string-prefix-p "\n" rest))
      (execute-kbd-macro (kbd "TAB"))
      (should-not fim-lsp--overlay)
      (dotimes (i (length expected))
        (should (equal (fim-lsp-test--line-at (+ 4 i)) (nth i expected))))
      (should (equal (fim-lsp-test--line-at (+ 4 (length expected))) "    return count")))))

(ert-deftest fim-lsp-test-one-daemon-for-all-buffers ()
  "A second buffer shares the daemon; killing it closes its document there."
  (fim-lsp-test--open)
  (let* ((file (expand-file-name "other.py" (file-name-directory (buffer-file-name fim-lsp-test--buffer))))
         (daemons (lambda ()
                    (cl-count-if (lambda (process)
                                   (and (process-live-p process)
                                        (equal (cdr (process-command process)) '("serve"))))
                                 (process-list))))
         (before (plist-get (fim-lsp-test--status) :openDocuments)))
    (with-temp-file file (insert "import os\n"))
    (let ((other (find-file-noselect file)))
      (unwind-protect
          (with-current-buffer other
            (should fim-lsp-mode)
            (should (fim-lsp--opened-p))
            (should (eq fim-lsp--opened (buffer-local-value 'fim-lsp--opened fim-lsp-test--buffer)))
            (should (= (funcall daemons) 1))
            (should (= (plist-get (fim-lsp-test--status) :openDocuments) (1+ before))))
        (kill-buffer other)
        (delete-file file)))
    (should (= (plist-get (fim-lsp-test--status) :openDocuments) before))))

(ert-deftest fim-lsp-test-status-and-progress ()
  (fim-lsp-test--open)
  (let ((status (fim-lsp-status)))
    (should (equal (plist-get status :state) "ready"))
    (should (equal (plist-get status :model) "qwen2.5-coder-0.5b"))
    (should (member (plist-get status :positionEncoding) '("utf-32" "utf-16"))))
  ;; The daemon's model-loading progress came over our connection.
  (should (equal fim-lsp-last-progress "model ready")))

(ert-deftest fim-lsp-test-cursor-moves-are-sent ()
  "A move of 8 lines or more is sent (fim/didMoveCursor) once the cursor settles; a small one not."
  (fim-lsp-test--open)
  (fim-lsp-dismiss)
  (erase-buffer)
  (insert (mapconcat (lambda (i) (format "x%d = %d\n" i i)) (number-sequence 1 30) ""))
  (let ((moves (lambda () (plist-get (fim-lsp-test--status) :cursorMoves)))
        (start nil))
    (cl-flet ((move-and-settle (keys)
                (execute-kbd-macro (kbd keys))
                (should (timerp fim-lsp--cursor-timer))
                (timer-event-handler fim-lsp--cursor-timer)))
      (setq fim-lsp--cursor-line nil)
      (setq start (funcall moves))
      (move-and-settle "M-<")           ; the first position is always sent
      (should (= (funcall moves) (+ start 1)))
      (move-and-settle "C-n C-n C-n")   ; 3 lines: the daemon's prefix still fits
      (should (= (funcall moves) (+ start 1)))
      (move-and-settle "M-> C-p")       ; 29 lines on
      (should (= (funcall moves) (+ start 2)))))
  (erase-buffer)
  (insert-file-contents (buffer-file-name)))

(ert-deftest fim-lsp-test-restart-after-the-daemon-exits ()
  "The daemon exits (as in a crash): the next request starts another, which opens the buffer."
  (fim-lsp-test--open)
  (let ((old fim-lsp--connection))
    (delete-process (jsonrpc--process old))
    (fim-lsp-test--wait (lambda () (null fim-lsp--connection)) "the exit to be noticed" 10)
    (should-not fim-lsp--shown)
    ;; Started less than `fim-lsp--restart-interval' ago: let this restart through at once.
    (let ((fim-lsp--last-start 0))
      (fim-lsp-test--type)
      (fim-lsp-test--run-idle-timer))
    (should fim-lsp--connection)
    (should-not (eq fim-lsp--connection old))
    (fim-lsp-test--wait #'fim-lsp--opened-p "the buffer to be opened on the new daemon" 60)
    (fim-lsp-test--wait (lambda () (equal (plist-get (fim-lsp-test--status) :state) "ready"))
                        "the new daemon's model" 300)
    (fim-lsp-test--type)
    (should (string-prefix-p "ber" (fim-lsp-test--wait-ghost)))
    (should (equal (fim-lsp-test--eglot-name) "pylsp"))))

(ert-deftest fim-lsp-test-eglot-opt-in ()
  "(fim-lsp-eglot-register \='js-mode): eglot runs fim-lsp for JavaScript only, and
`fim-lsp-mode' there shows ghost text through eglot's connection."
  (fim-lsp-test--open)
  (let ((file (expand-file-name "even.js" (file-name-directory (getenv "FIM_LSP_TEST_FILE"))))
        buffer)
    (with-temp-file file (insert "function isEven(number) {\n  return \n}\n"))
    (fim-lsp-eglot-register 'js-mode)
    (unwind-protect
        (with-current-buffer (setq buffer (find-file-noselect file))
          (switch-to-buffer buffer)
          (apply #'eglot (eglot--guess-contact))
          (should (equal (fim-lsp-test--eglot-name) "fim-lsp"))
          (fim-lsp-mode 1)
          (should-not (memq buffer fim-lsp--buffers)) ; no didOpen on our own daemon
          (should-not fim-lsp--opened)
          (fim-lsp-test--wait (lambda () (equal (plist-get (fim-lsp-status) :state) "ready"))
                              "eglot's daemon to load the model" 300)
          (goto-char (point-min))
          (forward-line 1)
          (end-of-line)
          (execute-kbd-macro "num")
          (let ((ghost (fim-lsp-test--wait-ghost)))
            (execute-kbd-macro (kbd "TAB"))
            (unless (string-match-p "\n" ghost)
              (should (equal (fim-lsp-test--line-at 2) (concat "  return num" ghost))))
            (should (string-prefix-p "  return number" (fim-lsp-test--line-at 2)))))
      (when (buffer-live-p buffer)
        (with-current-buffer buffer
          (let ((server (eglot-current-server)))
            (when server (eglot-shutdown server))))
        (kill-buffer buffer))
      (delete-file file)))
  ;; Python buffers keep pylsp.
  (should (equal (fim-lsp-test--eglot-name) "pylsp")))

;;; Edits reach the daemon as it sees them: the recorded changes, applied in order to the
;;; text of the last didOpen, give the buffer's text.  No daemon: the sends are captured.

(defun fim-lsp-test--apply-change (text change)
  "TEXT after CHANGE (a TextDocumentContentChangeEvent), positions in utf-32."
  (let ((range (plist-get change :range)))
    (if (not range)
        (plist-get change :text)
      (with-temp-buffer
        (insert text)
        (let ((fim-lsp--encoding "utf-32"))
          (let ((beg (fim-lsp--point-at (plist-get range :start)))
                (end (fim-lsp--point-at (plist-get range :end))))
            (delete-region beg end)
            (goto-char beg)
            (insert (plist-get change :text))))
        (buffer-string)))))

(ert-deftest fim-lsp-test-incremental-sync ()
  (let* ((fake (make-symbol "connection"))
         (fim-lsp--connection fake)
         (fim-lsp--ready t)
         (fim-lsp--encoding "utf-32")
         (fim-lsp--buffers nil)
         (sent nil))
    (cl-letf (((symbol-function 'jsonrpc-notify)
               (lambda (_connection method params) (push (cons method params) sent)))
              ((symbol-function 'fim-lsp--ensure-connection) (lambda () fake)))
      (with-temp-buffer
        (let ((python-mode-hook nil))   ; no eglot for a buffer without a file
          (python-mode))
        (insert "def f(x):\n    return x\n")
        (fim-lsp-mode 1)
        (let ((text (plist-get (plist-get (cdr (assq :textDocument/didOpen sent)) :textDocument) :text))
              (edits (list (lambda () (goto-char (point-max)) (insert "é𝄞 tail"))
                           (lambda () (goto-char 5) (delete-char 3))
                           (lambda () (goto-char (point-min)) (insert "# one\n# two\n"))
                           (lambda () (let ((inhibit-modification-hooks t)) (insert "hidden")))
                           (lambda () (goto-char (point-max)) (insert "\nz") (forward-line -1) (kill-line)))))
          (should (equal text "def f(x):\n    return x\n"))
          (dolist (edit edits)
            (setq sent nil)
            (funcall edit)
            (fim-lsp--flush)
            (let ((change (cdr (assq :textDocument/didChange sent))))
              (should change)
              (dolist (event (append (plist-get change :contentChanges) nil))
                (setq text (fim-lsp-test--apply-change text event))))
            (should (equal text (buffer-string)))))
        (fim-lsp-mode -1)
        (should (assq :textDocument/didClose sent))))))

(ert-deftest fim-lsp-test-positions-in-each-encoding ()
  (with-temp-buffer
    (insert "a\n x𝄞é|\n")
    (let ((bar (progn (goto-char (point-min)) (search-forward "|") (1- (point)))))
      (dolist (case '(("utf-32" . 4) ("utf-16" . 5) ("utf-8" . 8)))
        (let ((fim-lsp--encoding (car case)))
          (should (equal (fim-lsp--position bar) (list :line 1 :character (cdr case))))
          (should (= (fim-lsp--point-at (list :line 1 :character (cdr case))) bar)))))))

;;; fim-lsp-test.el ends here
