"""Developer tools beside the library (installed as ``lnn_ros_tools``): the aarch64 emulation check."""
