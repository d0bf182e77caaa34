"""Tiny MJX environments that learn in minutes on a CPU."""
