"""torchvision.transforms' Compose, ToTensor (uint8 H×W -> float 1×H×W in [0, 1]) and Normalize."""
import torch


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


class ToTensor:
    def __call__(self, image):
        return torch.tensor(image, dtype=torch.float32).div(255).unsqueeze(0)  # a copy: the images are read-only


class Normalize:
    def __init__(self, mean, std):
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __call__(self, x):
        return (x - self.mean) / self.std
