"""The simulated world: vehicle physics, wind, sensors, the camera renderer and the episode loop."""
