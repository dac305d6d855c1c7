"""2-D max and average pooling kernels (forward and backward) in four tiers."""
