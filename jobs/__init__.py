"""One Flink job per module: a typed config declared once, ``build_pipeline`` (wiring that returns
its result) and ``main(argv)``. The functions they run live in ``operators/``."""
