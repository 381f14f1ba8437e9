"""Test-wide JAX settings: float64 on (every test array states its dtype), rank promotion raises."""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
