"""``gecko-export``: write a model folder as a sentence-transformers folder or as our own format.

Example: ``gecko-export --model run/export --out st_model --format sentence-transformers``
(either folder may be a URL, ``gs://bucket/model``)

The export goes to a new or empty folder (``--overwrite`` replaces the files it writes in a
non-empty one), never into ``--model`` itself, and appears only once it is complete.
"""

from __future__ import annotations

import argparse
import sys

from gecko_jax.model_io.atomic import check_target

FORMATS = ("sentence-transformers", "gecko")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gecko-export", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        required=True,
        help="our export, a sentence-transformers folder, or a training run: WORKDIR (its "
        "newest checkpoint), WORKDIR@STEP or WORKDIR@best",
    )
    parser.add_argument("--out", required=True, help="folder to write: new or empty")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="sentence-transformers",
        help="sentence-transformers (BERT family only) or gecko (safetensors + JSON, any model)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty --out, replacing the files the export writes "
        "(other files there stay)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = args.out  # a local folder or a URL (gs://...)
    try:  # before the slow model load
        check_target(out, overwrite=args.overwrite, source=args.model)
    except (ValueError, FileExistsError) as error:
        parser.error(str(error))

    from gecko_jax import Encoder
    from gecko_jax.model_io.sentence_transformers import export_sentence_transformers

    try:
        encoder = Encoder.from_pretrained(args.model)
    except (OSError, ValueError) as error:
        print(f"gecko-export: cannot load --model {args.model}: {error}", file=sys.stderr)
        return 1
    try:
        if args.format == "gecko":
            encoder.save_pretrained(out, overwrite=args.overwrite)
        else:
            export_sentence_transformers(encoder, out, overwrite=args.overwrite)
    except (ValueError, FileExistsError) as error:
        parser.error(str(error))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
