"""TensorFuzz's experiments (Odena et al. 2019, arXiv 1807.10875) rebuilt for nnfuzz: issue #3.

    python -m benchmarks.tensorfuzz nans [--quick]
    python -m benchmarks.tensorfuzz quantization [--quick]
    python -m benchmarks.tensorfuzz bar [--quick]

``nans``: a digits MLP trained with a hand-written, numerically unstable
cross-entropy; nnfuzz (``objectives=["loss"]``) against random search with
the same mutation operators (``feedback=False``), executions and seconds to
the first NaN (or Inf) loss over several run seeds.

``quantization``: a float32 digits MLP against its int8 (and fp16) copy; for
each of 100 single seed images, is there a disagreement within L-inf radius
0.4 of it (inputs scaled to [-1, 1], as in TensorFuzz), and after how many
executions: nnfuzz, nnfuzz without objective guidance, random search.

``bar``: TensorFuzz's own nans experiment (784-200-100-10 ReLU MLP, 35,000
SGD steps, unstable softmax and cross-entropy) on digits upsampled to 28x28;
executions and seconds to the first NaN (or Inf) loss per seed image, against
TensorFuzz's measured median of 146,000 executions and 30.6 s.

Each writes ``benchmarks/results/tensorfuzz-<name>.md`` (``-quick.md`` with
``--quick``). Trained weights are cached as safetensors in
``benchmarks/results/weights/`` and retrained when missing; nothing is
downloaded (the data is scikit-learn's ``load_digits``). Runs use one torch
thread by default (``--threads``): these models are tiny, and a second thread
slowed training twenty-fold on the shared two-core machine.
"""
