"""Chainer's examples/mnist/train_mnist.py, ported to gpunet.

The same MLP (three Linear layers whose input sizes are inferred, 1000 units, ReLU, Chainer's
LeCun-normal initialization, which gpunet names since its own default is He-normal), Adam with
its defaults, batch size 100, 20 epochs, the test set evaluated after each epoch, a snapshot every
``--frequency`` epochs (at the end by default), a log of each epoch (``--out``/log.csv) and
``--resume`` from a snapshot. Chainer's ``L.Classifier`` (softmax cross-entropy and accuracy)
is the Trainer's loss and metric. ``--full`` runs the original's 20 epochs on the full training
set; by default this is a short check (1 epoch, the first 6,000 images).

    python examples/ports/chainer_train_mnist.py [--full] [--gpu 0] [--epoch N] [--unit 1000] [--json PATH]

The last line printed is the test accuracy, e.g. ``test_accuracy: 0.9836``.
"""
import argparse
import os
import time

import gpunet as gn
import gpunet.functional as F
from _record import record


# Network definition
class MLP(gn.Layer):

    def __init__(self, n_units, n_out):
        super().__init__()
        # the size of the inputs to each layer will be inferred; LeCun normal is Chainer's initializer
        self.l1 = gn.Linear(None, n_units, init="lecun_normal")  # n_in -> n_units
        self.l2 = gn.Linear(None, n_units, init="lecun_normal")  # n_units -> n_units
        self.l3 = gn.Linear(None, n_out, init="lecun_normal")  # n_units -> n_out

    def forward(self, x):
        h1 = F.relu(self.l1(x))
        h2 = F.relu(self.l2(h1))
        return self.l3(h2)


def main():
    parser = argparse.ArgumentParser(description='gpunet port of the Chainer example: MNIST')
    parser.add_argument('--batchsize', '-b', type=int, default=100,
                        help='Number of images in each mini-batch')
    parser.add_argument('--epoch', '-e', type=int, default=None,
                        help='Number of sweeps over the dataset to train (default: 1, or 20 with --full)')
    parser.add_argument('--train-size', type=int, default=None, help='default: 6000, or all with --full')
    parser.add_argument('--full', action='store_true', help="the original's run: 20 epochs, 60,000 images")
    parser.add_argument('--frequency', '-f', type=int, default=-1,
                        help='Frequency of taking a snapshot')
    parser.add_argument('--gpu', '-g', type=int, default=-1,
                        help='GPU ID (negative value indicates CPU)')
    parser.add_argument('--out', '-o', default='result',
                        help='Directory to output the result')
    parser.add_argument('--resume', '-r', default='',
                        help='Resume the training from snapshot')
    parser.add_argument('--unit', '-u', type=int, default=1000,
                        help='Number of units')
    parser.add_argument('--json', default=None, help='write the run record (JSON) here')
    args = parser.parse_args()
    epochs = args.epoch or (20 if args.full else 1)

    print('GPU: {}'.format(args.gpu))
    print('# unit: {}'.format(args.unit))
    print('# Minibatch-size: {}'.format(args.batchsize))
    print('# epoch: {}'.format(epochs))
    print('')

    # Set up a neural network to train, on the GPU given (or the CPU)
    gn.use('gpu:{}'.format(args.gpu) if args.gpu >= 0 else 'cpu')
    model = MLP(args.unit, 10)

    # Load the MNIST dataset
    train = gn.data.mnist('train', fallback_to_sample=True)
    test = gn.data.mnist('test', fallback_to_sample=True)
    train = train[:args.train_size or (None if args.full else 6000)]

    # Set up a trainer: softmax cross entropy and accuracy, as L.Classifier reports them,
    # the test set evaluated each epoch, a snapshot each `frequency` epochs, a log of each epoch
    frequency = epochs if args.frequency == -1 else max(1, args.frequency)
    trainer = gn.Trainer(model, 'cross_entropy', 'adam', metrics=['accuracy'], callbacks=[
        gn.callbacks.ModelCheckpoint(os.path.join(args.out, 'snapshot_epoch-{epoch}.gnck'), every=frequency),
        gn.callbacks.CSVLogger(os.path.join(args.out, 'log.csv')),
    ])

    # Run the training
    t0 = time.perf_counter()
    trainer.fit(train, val=test, epochs=epochs, batch_size=args.batchsize, verbose=2,
                resume=args.resume or None)
    accuracy = trainer.history['val_accuracy'][-1]
    record(args.json, 'chainer_train_mnist', epochs=epochs, train_size=len(train), test_accuracy=round(accuracy, 4),
           seconds=round(time.perf_counter() - t0, 1))
    print(f'test_accuracy: {accuracy:.4f}')


if __name__ == '__main__':
    main()
