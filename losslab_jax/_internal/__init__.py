"""Private helpers shared by every subpackage. Nothing here is public API."""
