"""The drone policy: a CNN encoder + CfC (and LSTM / MLP baselines) trained by imitation in the simulator.

``python -m lnn_ros_examples.drone_policy.recipe`` (= ``lnn-ros sim train-policy``) regenerates ``models/drone_*``.
"""
