"""What every other package builds on: topics and message schemas, connection settings, and
the declaration of job configs. Imports nothing of the project."""
