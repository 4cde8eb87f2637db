"""``gecko-fret`` and ``gecko-fret-beam`` take the same gin and flags and build the same configs."""

from __future__ import annotations

import pytest

from gecko_jax.cli import fret as cli
from gecko_jax.cli import fret_beam
from gecko_jax.cli.fret_flags import GENERATE_FLAGS, MINE_FLAGS, RUN_FLAGS, fret_settings
from gecko_jax.fret.generate import GenerateConfig
from gecko_jax.fret.mine import MineConfig

COMMON = ["--passages", "p.jsonl", "--out", "out", "--llm", "openai:m@http://127.0.0.1:9/v1"]


def both(argv: list[str]):
    """(gecko-fret's settings, gecko-fret-beam's config) from the same arguments."""
    parser = cli.build_parser()
    local = fret_settings(parser, parser.parse_args(["all", *argv]))
    parser = fret_beam.build_parser()
    args, pipeline_args = parser.parse_known_args([*argv, "--runner", "DirectRunner"])
    assert pipeline_args == ["--runner", "DirectRunner"]
    return local, fret_beam.beam_config(parser, args)


def test_the_same_gin_and_flags_give_the_same_configs():
    argv = [*COMMON, "--gin_file", "gin_configs/fret/cpu_smollm2.gin"]
    argv += [
        "--gin_param",
        "gecko.MineConfig.rrf_k = 60.0",
        "--gin_param",
        "gecko.fret_run.max_passages = 7",
    ]
    argv += ["--num_candidates", "5", "--k_th", "4", "--scoring", "joint", "--seed", "3"]
    argv += ["--max_tokens", "32", "--max_chars", "300", "--llm_arg", "timeout=5"]
    local, beam = both(argv)
    generate = GenerateConfig(max_tokens=32, batch_size=16, seed=3)
    mine = MineConfig(
        num_candidates=5,
        k_th=4,
        rrf_k=60.0,
        scoring="joint",
        seed=3,
        score_batch_size=32,
        fusion=("query_likelihood", "retriever"),
        relabel_guard="unanimous",
    )
    assert local.generate == beam.generate == generate
    assert local.mine == beam.mine == mine
    run = local.run
    assert (run.llm, run.llm_kwargs, run.max_chars, run.max_passages) == (
        beam.llm,
        beam.llm_kwargs,
        beam.max_chars,
        beam.max_passages,
    )
    assert (run.max_chars, run.max_passages, run.llm_kwargs) == (300, 7, {"timeout": 5})


def test_paper_gin_drives_gecko_fret_beam():
    local, beam = both([*COMMON, "--gin_file", "gin_configs/fret/paper.gin"])
    assert local.mine == beam.mine and local.generate == beam.generate
    assert beam.max_chars == 4000 and beam.generate.max_tokens == 128
    assert (beam.mine.num_candidates, beam.mine.k_th, beam.mine.rrf_k) == (20, 20, 0.0)


def test_every_fret_flag_is_spelled_with_underscores_in_both_runners():
    names = {*RUN_FLAGS, *GENERATE_FLAGS, *MINE_FLAGS, "seed", "gin_file", "gin_param", "llm_arg"}
    for parser in (cli.build_parser(), fret_beam.build_parser()):
        flags = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}
        assert {"--" + name for name in names} <= flags
        assert not [f for f in flags if "-" in f.removeprefix("--")]


@pytest.mark.parametrize("runner", ["gecko-fret", "gecko-fret-beam"])
def test_a_config_that_refuses_its_flags_is_a_usage_error(runner, capsys):
    argv = [*COMMON, "--num_candidates", "3", "--round_trip_k", "3"]
    with pytest.raises(SystemExit) as stop:
        if runner == "gecko-fret":
            both(argv)
        else:
            parser = fret_beam.build_parser()
            fret_beam.beam_config(parser, parser.parse_args(argv))
    assert stop.value.code == 2
    assert "round_trip_k must be in [0, num_candidates=3)" in capsys.readouterr().err
