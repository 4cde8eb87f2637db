"""FRet as an Apache Beam pipeline (DirectRunner here; Dataflow, Flink or Spark at scale): the
local runner's stages, statistics, manifest and LLM cache, over sharded passages."""
