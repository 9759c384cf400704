;;; fim-lsp-test.el --- ERT tests of fim-lsp.el against the real daemon and model  -*- lexical-binding: t; -*-

;;; Commentary:

;; Run by tests/editors/test_emacs.py in batch mode, after loading the README's init snippet
;; (editors/emacs/example/init.el) with HOME set up as the README says:
;;   emacs --batch -l ~/.emacs.d/init.el -l fim-lsp-test.el -f ert-run-tests-batch-and-exit
;; $FIM_LSP_TEST_FILE is the fixture: typing "num" at the end of its third line has one
;; right completion, "number % 2 == 0".  Keys are pressed with `execute-kbd-macro', which
;; runs the real command loop hooks.  Batch Emacs never goes idle, so where the tests need
;; the idle request they run the idle timer the typing scheduled.

;;; Code:

(require 'ert)
(require 'subr-x)
(require 'fim-lsp)

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
  (jsonrpc-request (eglot-current-server) :fim/status eglot--{}))

(defun fim-lsp-test--open ()
  "Visit the fixture once, as a user would, and wait until the model is ready."
  (unless (buffer-live-p fim-lsp-test--buffer)
    (let ((file (or (getenv "FIM_LSP_TEST_FILE") (error "FIM_LSP_TEST_FILE is not set"))))
      (setq fim-lsp-test--buffer (find-file-noselect file))
      (switch-to-buffer fim-lsp-test--buffer)
      (should (eq major-mode 'python-mode))
      (should fim-lsp-inline-mode)          ; turned on by the snippet's hook
      ;; `eglot-ensure' connects when the command that visited the file finishes.
      (run-hooks 'post-command-hook)
      (fim-lsp-test--wait #'eglot-current-server "eglot to connect" 60)
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

(ert-deftest fim-lsp-test-registered-with-eglot ()
  (fim-lsp-test--open)
  (let ((contact (nth 3 (eglot--guess-contact))))
    (should (string-suffix-p "/.venv/bin/fim-lsp" (car contact)))
    (should (equal (cadr contact) "serve")))
  (should (equal (plist-get (eglot--server-info (eglot-current-server)) :name) "fim-lsp")))

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
    (should (string-prefix-p "    return number" (fim-lsp-test--current-line)))))

(ert-deftest fim-lsp-test-accept-word-then-line ()
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
  ;; Nothing shown: TAB is python-mode's indentation command again, and inserts no suggestion.
  (should (eq (key-binding (kbd "TAB")) #'indent-for-tab-command))
  (execute-kbd-macro (kbd "TAB"))
  (should (equal (string-trim (fim-lsp-test--current-line)) "return numx")))

(ert-deftest fim-lsp-test-c-g-dismisses ()
  (fim-lsp-test--type)
  (fim-lsp-test--wait-ghost)
  (execute-kbd-macro (kbd "C-g"))
  (should-not fim-lsp--shown)
  (should-not fim-lsp--active)
  (should (equal (fim-lsp-test--current-line) fim-lsp-test--typed)))

(ert-deftest fim-lsp-test-typing-cancels-the-request ()
  (fim-lsp-test--type)
  (fim-lsp-test--run-idle-timer)
  (let* ((pending fim-lsp--pending)
         (server (car pending))
         (id (cdr pending)))
    (should (integerp id))
    (execute-kbd-macro "b")             ; before the answer could be read
    (should-not fim-lsp--pending)
    (should (memq id fim-lsp-cancelled-ids))
    ;; The daemon answers the cancelled request (result or error); the answer is dropped.
    (fim-lsp-test--wait (lambda () (not (gethash id (jsonrpc--request-continuations server))))
                        "the answer to the cancelled request")
    (should-not fim-lsp--shown)
    (should (equal (fim-lsp-test--current-line) (concat fim-lsp-test--typed "b")))))

(ert-deftest fim-lsp-test-completion-at-point ()
  "eglot's own `completion-at-point' goes through textDocument/completion."
  (fim-lsp-test--type)
  (let ((tries 0))
    ;; Like the Tab test: a completion cut short by the time budget is completed again.
    (while (and (< tries 4) (not (string-match-p "% 2 == 0" (fim-lsp-test--current-line))))
      (fim-lsp-dismiss)
      (let ((before (fim-lsp-test--current-line)))
        (completion-at-point)
        (should-not (equal (fim-lsp-test--current-line) before)))
      (setq tries (1+ tries))))
  (should (string-prefix-p "    return number" (fim-lsp-test--current-line)))
  (should (string-match-p "% 2 == 0" (fim-lsp-test--current-line))))

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

(ert-deftest fim-lsp-test-status-and-progress ()
  (fim-lsp-test--open)
  (let ((status (fim-lsp-status)))
    (should (equal (plist-get status :state) "ready"))
    (should (equal (plist-get status :model) "qwen2.5-coder-0.5b")))
  ;; eglot 1.9 shows no progress itself; fim-lsp.el showed the daemon's.
  (should (equal fim-lsp-last-progress "model ready")))

;;; fim-lsp-test.el ends here
