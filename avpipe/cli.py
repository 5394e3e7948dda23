"""``avpipe <stage> ...``: one sub-command per workflow stage.

Each stage lives in ``avpipe/stages/<stage>.py`` and exposes ``add_arguments(parser)``,
``resolve_config(args, config)`` and ``run(args)``.  Stages are imported only when
invoked, so ``avpipe manifest`` does not pay for importing torch.  Every stage takes
``--config config/config.yaml --dataset DS [--set KEY=VALUE] [--print-config]`` or the
workflow's ``--config-json`` (avpipe/stages/__init__.py); ``run`` finds the resolved
slice in ``args.cfg``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from avpipe.config import ConfigError
from avpipe.stages import shown_config, stage_config
from avpipe.utils.log import setup_logging
from avpipe.utils.provenance import version_string

# stage name -> one-line help.  The name is also the module, the rule file and
# the results/ and logs/ folder.
STAGES: dict[str, str] = {
    "synthetic": "generate the embedded synthetic dataset (MP4s + AVE/LLP annotations)",
    "manifest": "parse a dataset's annotations into avpipe's manifest and coverage report",
    "extract": "features (VGGish, VGG-19, ResNet-152, R(2+1)D-18), one decode per video, into Zarr",
    "pretrain": "CLCL stage A: collaborative encoder, instance discrimination + decorrelation",
    "selflabel": "CLCL stage B: self-label annotator with label contrast",
    "em": "CLCL stage C: one EM round (E: pseudo-labels, M: MIL localizer)",
    "cpsp": "PSP / CPSP fully and weakly supervised training",
    "avvp": "HAN / CoLeaF weakly supervised audio-visual video parsing",
    "train": "a method family added through the registry (avpipe/methods/registry.py)",
    "evaluate": "compute metrics (AVE accuracy, purity, AVVP) from a stage's predictions",
    "report": "paper-style tables and figures across methods and seeds",
    "localize": "event timelines (TSV, JSON, PNG) of new videos from a trained model",
}


class _Version(argparse.Action):
    """``--version``: like argparse's, but asks git for the commit only when used."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(f"{parser.prog} {version_string()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avpipe", description="avpipe: one sub-command per workflow stage (see README.md)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--version",
        action=_Version,
        help="print the version and, from a git checkout, the commit (-dirty: uncommitted edits)",
    )
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, help_text in STAGES.items():
        # add_help=False: `avpipe STAGE -h` reaches the stage's own parser (second pass).
        p = sub.add_parser(name, help=help_text, description=help_text, add_help=False)
        p.set_defaults(_stage=name)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Two-pass parse: find the stage, then let its module add its own arguments.
    known, _ = parser.parse_known_args(argv)
    module = importlib.import_module(f"avpipe.stages.{known._stage}")
    stage_parser = argparse.ArgumentParser(
        prog=f"avpipe {known._stage}", description=STAGES[known._stage]
    )
    stage_parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    module.add_arguments(stage_parser)
    idx = argv.index(known._stage)
    args = stage_parser.parse_args(argv[:idx] + argv[idx + 1 :])
    # stages with a config slice (resolve_config); extract: only its `shard` sub-command
    commands = getattr(module, "CONFIG_COMMANDS", None)
    takes_config = hasattr(module, "resolve_config") and (
        commands is None or args.command in commands
    )
    setup_logging(args.verbose)
    try:
        if takes_config:
            args.cfg = stage_config(module, args)
            if args.print_config:
                shown = shown_config(module, args, args.cfg)
                print(yaml.safe_dump(shown, sort_keys=False), end="")
                return 0
        return int(module.run(args) or 0)
    except ConfigError as e:
        logging.getLogger("avpipe").error("configuration error: %s", e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
