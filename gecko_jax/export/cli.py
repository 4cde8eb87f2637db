"""``gecko-export``: write a model folder as a sentence-transformers folder or as our own format.

Example: ``gecko-export --model run/export --out st_model --format sentence-transformers``
"""

from __future__ import annotations

import argparse

FORMATS = ("sentence-transformers", "gecko")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gecko-export", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", required=True, help="our export or a sentence-transformers folder"
    )
    parser.add_argument("--out", required=True, help="folder to write")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="sentence-transformers",
        help="sentence-transformers (BERT family only) or gecko (safetensors + JSON, any model)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    from gecko_jax import Encoder
    from gecko_jax.export.sentence_transformers import export_sentence_transformers

    encoder = Encoder.from_pretrained(args.model)
    if args.format == "gecko":
        out = encoder.save_pretrained(args.out)
    else:
        try:
            out = export_sentence_transformers(encoder, args.out)
        except ValueError as error:
            parser.error(str(error))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
