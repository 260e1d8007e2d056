"""Graph transforms: the ONNX rewrites and searches behind the graph variants (INT8 quantization, its
accuracy recovery), used by the variant stages; they read and write graphs, judged by analysis."""
