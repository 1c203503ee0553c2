"""inverse custom op."""
