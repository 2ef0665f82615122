"""``nnfuzz train``: the second engine, which searches training trajectories.

The numerical bugs users meet most appear while training moves the weights. This engine
trains copies of the target's model (never the user's object) along trajectories of up to
``--max-steps`` optimizer steps from the starting weights, choosing which examples form each
batch (with some labels of other examples: label noise) and nudging their inputs, within
the domain, along the sign of a gradient (GRIST's move), with hyperparameters drawn within
the target's ``HYPERPARAMETERS``; a trajectory whose training state is new is kept and extended. It plugs into
the same drivers, Campaign, output folder and replay as the fuzz loop (nnfuzz.drivers.engine).

- :mod:`nnfuzz.training.setup`: the training contract (loss, labels, optimizer, step);
- :mod:`nnfuzz.training.hyperparameters`: ``HYPERPARAMETERS``, checked, drawn, applied;
- :mod:`nnfuzz.training.trajectory`: a trajectory's steps, as tensors a reproducer holds;
- :mod:`nnfuzz.training.objectives`: what makes a step a failure, and the probe batch;
- :mod:`nnfuzz.training.state`: one copy of the model being trained, step by step, judged;
- :mod:`nnfuzz.training.engine`: the engine;
- :mod:`nnfuzz.training.corpus`: the kept trajectories on disk (resume, workers);
- :mod:`nnfuzz.training.replay`: re-training a saved trajectory;
- :mod:`nnfuzz.training.script`: a saved trajectory as a plain PyTorch script;
- :mod:`nnfuzz.training.shrink`: ``nnfuzz minimize``: a trajectory made smaller;
- :mod:`nnfuzz.training.command`: ``nnfuzz train``.
"""
