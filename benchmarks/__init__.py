"""Benchmarks of lnn_ros, beside the library: each writes its figures to results/.

Installed as ``lnn_ros_benchmarks``; ``python -m lnn_ros_benchmarks.<name>``.
"""
