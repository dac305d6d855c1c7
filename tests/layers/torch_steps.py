"""One training step of a gpunet model and of its PyTorch twin on the same batch, for the oracle
tests that train both side by side."""
import numpy as np


def step_both(ours, opt, loss, theirs, topt, tloss, x: np.ndarray, y: np.ndarray) -> None:
    """Forward, loss, backward and optimizer step in gpunet, then the same in PyTorch."""
    import torch

    loss(ours(x), y)
    ours.backward(loss.backward())
    opt.step()
    topt.zero_grad()
    tloss(theirs(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    topt.step()
