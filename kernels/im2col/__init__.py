"""im2col / col2im for convolutions, and the (C, N·P) <-> (N, C, P) layout moves around the matrix product."""
