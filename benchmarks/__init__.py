"""Benchmarks of platypush-ext: ``python -m benchmarks [name ...] [--quick]`` (``make bench``)."""
