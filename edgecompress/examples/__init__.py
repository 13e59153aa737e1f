"""Small example models trained on real digits, for the demo, tests and benchmarks."""
