"""torchvision.datasets.MNIST over the IDX files that gpunet.data.mnist reads (no download)."""
import torch.utils.data

import gpunet.data


class MNIST(torch.utils.data.Dataset):
    def __init__(self, root, train=True, download=False, transform=None):
        data = gpunet.data.mnist("train" if train else "test", fallback_to_sample=True)
        self.images, self.targets = data.images, data.y
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        image = self.images[i]
        return (self.transform(image) if self.transform else image), int(self.targets[i])
