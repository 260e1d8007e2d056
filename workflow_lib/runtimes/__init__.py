"""The runtimes layer: the backend registry and one module per backend (numpy in, numpy out), and what
loads and describes the models they run (checkpoints, ONNX graphs, TensorRT flavours, FLOP counts)."""
