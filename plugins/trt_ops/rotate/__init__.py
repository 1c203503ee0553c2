"""rotate custom op."""
