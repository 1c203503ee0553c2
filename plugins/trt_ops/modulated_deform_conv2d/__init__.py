"""modulated_deform_conv2d custom op."""
