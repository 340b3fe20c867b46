"""Benchmarks that print the speed and quality figures quoted in the book.

``python -m recnotes.bench eval`` (evaluation speed), ``python -m recnotes.bench models``
(every model on protocol P1), ``python -m recnotes.bench llm`` (the zero-shot LLM ranker
on protocol P2, shared-prefix vs naive scoring).  Each subcommand lives in its own module.
"""
