"""Benchmarks of resblocks and its recipes: ``python -m benchmarks.run [--quick]`` (see ``docs/benchmarks.md``).

Every benchmark times a candidate against a reference measured in the same process and run,
interleaved round by round, and reports the ratio: on a shared machine absolute times drift,
ratios of neighbouring measurements much less. One small module per group:

* :mod:`~benchmarks.blocks`: Transformer and conv blocks vs torch / nanoGPT / torchvision references,
* :mod:`~benchmarks.shortcuts`: step time, parameters and activation memory of each shortcut rule vs ``identity``,
* :mod:`~benchmarks.framework`: a Lightning recipe step vs a plain PyTorch loop; data pipeline vs training,
* :mod:`~benchmarks.fast_path`: the fast path (bf16 autocast, channels-last, fused optimiser) vs fp32 eager,
* :mod:`~benchmarks.efficiency`: model FLOP/s of the GPT recipe as a fraction of the measured matmul ceiling.

``benchmarks`` is not part of the library: it imports ``resblocks``, ``recipes``, torchvision and Lightning.
"""
