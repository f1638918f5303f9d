"""Engine: the predictor and detection post-processing, the trainer with its hooks, the
evaluator interface."""
