"""Unitree Go1 environments: joystick locomotion on flat and rough ground."""
