"""Recipes: end-to-end runs (the demo, the ablations) built from FRet, the seqio tasks, the
trainer and the evaluators. What both recipes use lives here (:mod:`.finetune`,
:mod:`.mixture`, :mod:`.eval_sets`, :mod:`.progress`), so neither imports the other, and
nothing below this layer imports it.
"""
