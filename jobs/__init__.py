"""One Flink job per module; each has ``build_pipeline`` (wiring only) and ``main(argv)``."""
