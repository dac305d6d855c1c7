"""Fused optimizer updates over a flat parameter arena: SGD, momentum/Nesterov, Adagrad, RMSprop,
Adam/AdamW (and normalized SGD through SGD's normalization), with clipping, decay and a
non-finite guard, in one pass over memory."""
