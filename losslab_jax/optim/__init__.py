"""torch.optim optimizers as optax transformations. See API.md §2."""

__all__: list[str] = []
