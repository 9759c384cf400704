"""Completion quality: HumanEval-infilling pass@1 and SantaCoder-FIM exact match.

* ``tasks``: the datasets as editor documents, and how an answer is scored;
* ``sandbox``: the fenced subprocess the HumanEval tests run in;
* ``bench``: ``bench quality``, asking the daemon (and the peer) and reporting.
"""
