"""How a step runs: the fast path (precision, channels-last, fused optimisers, compile), Lightning precision
plugins, and the divergence guard (non-finite loss, gradients or weights)."""
