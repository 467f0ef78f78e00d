"""Applications built on lnn_ros, beside the library: the sine example and the drone-policy recipe.

Installed as ``lnn_ros_examples`` (from this folder); the library never imports them.
"""
