"""Engine: the predictor and detection post-processing, bind-time graph rewrites."""
