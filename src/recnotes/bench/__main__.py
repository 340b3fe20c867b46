"""``python -m recnotes.bench SUBCOMMAND [options]``: dispatch to recnotes.bench.<subcommand>."""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {
    "eval": "recnotes.bench.eval",
    "models": "recnotes.bench.models",
    "llm": "recnotes.bench.llm",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        print("usage: python -m recnotes.bench {" + ",".join(SUBCOMMANDS) + "} [options]")
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(SUBCOMMANDS[argv[0]])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
