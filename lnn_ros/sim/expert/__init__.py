"""The privileged expert, its noisy (DART) variant and expert demonstrations."""
