"""Pure logic by domain (features, ranking, alarms, transcripts), record validation, the model
registry and ONNX export: no PyFlink, no Kafka or Redis clients."""
