"""Evaluators over embeddings, MTEB-style, with the paper's Table-9 task strings.

``retrieval`` (exact search, trec_eval-compatible metrics), ``sts``, ``classification`` and
``clustering`` each score one kind of task; ``instructions`` holds the Table-9 strings they (and
the mteb adapter and the export) use; ``wiki_sets`` builds sets from the offline Wikipedia
extracts; ``suite`` names tasks and runs them; ``cli`` is ``gecko-eval``; ``mteb_adapter``
wraps an ``Encoder`` for mteb 2.x. Modules are imported on their own, so none of this pulls in
TensorFlow, scikit-learn or mteb until used.
"""
