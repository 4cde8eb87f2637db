"""FRet: LLM-generated (task, query) pairs relabelled with LLM-mined positives and negatives.

Step 1 (:mod:`~gecko_jax.fret.generate`) asks an LLM for a task and a query per seed passage;
step 2 (:mod:`~gecko_jax.fret.mine`) retrieves top-N candidates, scores them with query
likelihood and relevance classification, fuses the ranks (RRF) and picks a positive and a hard
negative (paper section 3.2 and Appendix A). :func:`~gecko_jax.fret.pipeline.run_fret` runs both.
"""
