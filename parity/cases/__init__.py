"""Parity cases. Every public module here registers its cases on import (see ``parity._case``)."""
