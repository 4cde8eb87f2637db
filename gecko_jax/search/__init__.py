"""Search over embeddings: exact (``exact``), ScaNN (``scann_index``) and the top-N candidates
FRet mines from (``candidates``), with the ranking metrics both evaluation and FRet's teacher
check report (``metrics``)."""
