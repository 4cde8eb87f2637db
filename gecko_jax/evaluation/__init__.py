"""Evaluators over embeddings, MTEB-style, with the paper's Table-9 task strings.

``retrieval`` (exact search, trec_eval-compatible metrics), ``sts``, ``classification`` and
``clustering`` each score one kind of task; ``wiki_sets`` builds sets from the offline Wikipedia
extracts; ``suite`` names tasks and runs them; ``cli`` is ``gecko-eval``. Modules are imported
on their own, so none of this pulls in TensorFlow or scikit-learn until used.
"""
