"""`atommem <stage> --config FILE [--set key.sub=value ...]`: one entry point per pipeline stage."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from atommem.config import from_dict, load_config
from atommem.errors import PREEMPTED, WRITE_FAILED, InputError, Preempted, WriteError

# stage name -> (recipe module, one-line help)
STAGES = {
    "prepare": ("atommem.recipes.prepare", "load benchmark files and build long-context samples"),
    "evaluate": ("atommem.recipes.evaluate", "run a memory method on long-context samples and score it"),
    "synthesize": ("atommem.recipes.synthesize", "collect SFT trajectories with an oracle or LLM teacher"),
    "sft": ("atommem.recipes.sft", "supervised fine-tuning on synthesized trajectories"),
    "rl": ("atommem.recipes.rl", "multi-turn GRPO of the memory agent"),
    "compare": ("atommem.recipes.compare", "collect finished evaluations into comparison tables"),
    "gains": ("atommem.recipes.gains", "paired bootstrap of each policy's EM gain over the one before"),
    "plot": ("atommem.recipes.plot", "draw the training-dynamics and score figures"),
    "convert-model": ("atommem.recipes.convert_model", "resolve a model name to a local HF folder"),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse's errors as one line (the usage text is one `--help` away), exit status 2 as before."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="atommem", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, (_module, help_text) in STAGES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)  # subparsers share the parser class
        p.add_argument("--config", help="YAML/JSON config file for this stage, or an inline {...} mapping")
        p.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config key (dotted, value parsed as YAML); repeatable",
        )
        p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    recipe = importlib.import_module(STAGES[args.stage][0])
    try:
        cfg = from_dict(recipe.CONFIG_CLASS, load_config(args.config, args.overrides))
        if args.print_config:
            from dataclasses import asdict

            import yaml

            print(yaml.safe_dump(asdict(cfg), sort_keys=False))
            return 0
        recipe.main(cfg)
    except InputError as err:
        # one line, however the message was built (YAML errors, file contents)
        print(f"atommem {args.stage}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except WriteError as err:
        # the disk or a limit, not the input: what was written before stays, a rerun resumes from it
        print(f"atommem {args.stage}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return WRITE_FAILED
    except Preempted as err:
        print(f"atommem {args.stage}: preempted: {' '.join(str(err).split())}", file=sys.stderr)
        return PREEMPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
