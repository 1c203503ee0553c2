"""multi_head_attention custom op."""
