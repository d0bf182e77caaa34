"""Grasping: a gantry gripper with tactile finger pads lifts or places a cube."""
