"""Benchmarks that print the speed and quality figures quoted in the book.

``python -m recnotes.bench eval`` (evaluation speed), ``python -m recnotes.bench models``
(every model on protocol P1).  Each subcommand lives in its own module.
"""
