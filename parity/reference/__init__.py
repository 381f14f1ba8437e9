"""Torch reference implementations, written from the math, for components torch lacks."""
