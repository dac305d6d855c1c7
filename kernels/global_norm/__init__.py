"""Global L2 norm of a flat array with a non-finite flag, and scaling by a norm read from memory."""
