"""PyTorch's examples/mnist (main.py), ported to gpunet line for line.

The same network (two 3×3 convolutions, max pooling, dropout 0.25 and 0.5, Linear(9216, 128),
Linear(128, 10), log_softmax) written as a forward-only module, the same loss (NLL of the
log-probabilities), optimizer (Adadelta, lr 1.0), schedule (StepLR: ×0.7 each epoch), batch sizes
(64, test 1000), normalization ((x − 0.1307)/0.3081) and initialization (PyTorch's default,
U(±1/√fan_in) for weights and biases, named here since gpunet's default is He-normal). The original's default is 14 epochs on
the full training set (``--full``); by default this runs a short check: 1 epoch on the first
6,000 images. The backward pass is gpunet's explicit ``model.backward(loss.backward())`` where
PyTorch's autograd has ``loss.backward()``.

    python examples/ports/pytorch_mnist.py [--full] [--epochs N] [--train-size N] [--json PATH]

The last line printed is the test accuracy, e.g. ``test_accuracy: 0.9915``.
"""
import argparse
import time

import gpunet as gn
import gpunet.functional as F
from _record import record


TORCH_INIT = dict(init="uniform", bias_init="uniform")  # PyTorch's default: U(±1/√fan_in), bias too


class Net(gn.Layer):
    def __init__(self):
        super().__init__()
        self.conv1 = gn.Conv2d(1, 32, 3, 1, **TORCH_INIT)
        self.conv2 = gn.Conv2d(32, 64, 3, 1, **TORCH_INIT)
        self.dropout1 = gn.Dropout(0.25)
        self.dropout2 = gn.Dropout(0.5)
        self.fc1 = gn.Linear(9216, 128, **TORCH_INIT)
        self.fc2 = gn.Linear(128, 10, **TORCH_INIT)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = F.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def train(args, model, loss_fn, x, y, optimizer, epoch):
    model.train()
    n_batches = gn.data.num_batches(len(x), args.batch_size)
    for batch_idx, (data, target) in enumerate(gn.data.batches(x, y, args.batch_size, shuffle=True,
                                                               device=model.device)):
        output = model(data)
        loss = loss_fn(output, target)
        model.backward(loss_fn.backward())
        optimizer.step()
        if batch_idx % args.log_interval == 0:
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(x), 100. * batch_idx / n_batches, float(loss)))


def test(model, x, y, batch_size):
    model.eval()
    test_loss = 0
    correct = 0
    nll_sum = gn.losses.NLLLoss(reduction="sum")
    for data, target in gn.data.batches(x, y, batch_size, device=model.device):
        output = model(data)
        test_loss += float(nll_sum(output, target))  # sum up batch loss
        pred = output.argmax(axis=1)  # get the index of the max log-probability
        correct += int((pred == target).sum())

    test_loss /= len(x)
    print('\nTest set: Average loss: {:.4f}, Accuracy: {}/{} ({:.0f}%)\n'.format(
        test_loss, correct, len(x), 100. * correct / len(x)))
    return correct / len(x)


def main(argv=None):
    parser = argparse.ArgumentParser(description='gpunet port of the PyTorch MNIST Example')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--test-batch-size', type=int, default=1000)
    parser.add_argument('--epochs', type=int, default=None, help='default: 1, or 14 with --full')
    parser.add_argument('--train-size', type=int, default=None, help='default: 6000, or all with --full')
    parser.add_argument('--full', action='store_true', help="the original's run: 14 epochs, 60,000 images")
    parser.add_argument('--lr', type=float, default=1.0)
    parser.add_argument('--gamma', type=float, default=0.7)
    parser.add_argument('--backend', default='auto', choices=['auto', 'cpu', 'gpu'])
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--log-interval', type=int, default=10)
    parser.add_argument('--save-model', action='store_true')
    parser.add_argument('--json', default=None, help='write the run record (JSON) here')
    args = parser.parse_args(argv)
    epochs = args.epochs or (14 if args.full else 1)
    train_size = args.train_size or (None if args.full else 6000)

    device = gn.use(args.backend)
    gn.seed(args.seed)
    print("Using Device: {}\n".format(device))

    def load(split):
        d = gn.data.mnist(split, flatten=False, fallback_to_sample=True)
        return (d.x - 0.1307) / 0.3081, d.y

    x_train, y_train = load("train")
    x_test, y_test = load("test")
    x_train, y_train = x_train[:train_size], y_train[:train_size]

    model = Net()
    optimizer = gn.optim.Adadelta(model.parameters(), lr=args.lr)
    scheduler = gn.optim.schedules.Step(step_size=1, gamma=args.gamma)
    loss_fn = gn.losses.NLLLoss()

    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        scheduler.apply(optimizer, epoch - 1)
        train(args, model, loss_fn, x_train, y_train, optimizer, epoch)
        accuracy = test(model, x_test, y_test, args.test_batch_size)

    if args.save_model:
        gn.train.checkpoint.save("mnist_cnn.gnck", model.state_dict())
    record(args.json, "pytorch_mnist", epochs=epochs, train_size=len(x_train), test_accuracy=round(accuracy, 4),
           seconds=round(time.perf_counter() - t0, 1))
    print(f"test_accuracy: {accuracy:.4f}")
    return accuracy


if __name__ == '__main__':
    main()
