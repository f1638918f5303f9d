"""Engine: the training loop and its hooks (trainer.py, hooks.py), the predictor and
detection post-processing, bind-time graph rewrites."""
