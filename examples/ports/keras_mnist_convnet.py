"""Keras's "Simple MNIST convnet" (keras-io examples/vision/mnist_convnet.py), ported to gpunet.

The same model (Conv2D 32 and 64 with ReLU, 2×2 max pooling, Flatten, Dropout 0.5, Dense 10),
optimizer ("adam"), batch size 128, 15 epochs and validation_split 0.1. Two differences, both
Keras's own options: the last layer gives logits and the loss takes integer labels
("sparse_categorical_crossentropy" from logits, where the original ends in a softmax and one-hot
labels), and images are (N, 1, 28, 28), channels first. Keras's default initializer
(Glorot-uniform) is named, since gpunet's default is He-normal. ``--full`` runs the original's 15 epochs
on the full training set; by default this is a short check (1 epoch, the first 6,000 images).

    python examples/ports/keras_mnist_convnet.py [--full] [--epochs N] [--train-size N] [--json PATH]

The last line printed is the test accuracy, e.g. ``test_accuracy: 0.9912``.
"""
import argparse
import time

import gpunet as gn
from _record import record

ap = argparse.ArgumentParser(description="gpunet port of Keras's simple MNIST convnet")
ap.add_argument("--full", action="store_true", help="the original's run: 15 epochs, 60,000 images")
ap.add_argument("--epochs", type=int, default=None)
ap.add_argument("--train-size", type=int, default=None)
ap.add_argument("--backend", default="auto", choices=["auto", "cpu", "gpu"])
ap.add_argument("--json", default=None, help="write the run record (JSON) here")
args = ap.parse_args()
gn.use(args.backend)
gn.seed(0)

# Model / data parameters
num_classes = 10
input_shape = (1, 28, 28)

# Load the data (scaled to [0, 1], shape (N, 1, 28, 28)) and split it between train and test sets
train, test = (gn.data.mnist(split, flatten=False, fallback_to_sample=True) for split in ("train", "test"))
x_train, y_train, x_test, y_test = train.x, train.y, test.x, test.y
n = args.train_size or (None if args.full else 6000)
x_train, y_train = x_train[:n], y_train[:n]
print("x_train shape:", x_train.shape)
print(x_train.shape[0], "train samples")
print(x_test.shape[0], "test samples")

keras_init = "glorot_uniform"  # Keras's default initializer (gpunet's is He-normal)
model = gn.Sequential(
    gn.Conv2d(None, 32, kernel_size=(3, 3), activation="relu", init=keras_init),
    gn.MaxPool2d(kernel_size=(2, 2)),
    gn.Conv2d(None, 64, kernel_size=(3, 3), activation="relu", init=keras_init),
    gn.MaxPool2d(kernel_size=(2, 2)),
    gn.Flatten(),
    gn.Dropout(0.5),
    gn.Linear(None, num_classes, init=keras_init),
)
print(model.build(input_shape))

batch_size = 128
epochs = args.epochs or (15 if args.full else 1)

trainer = gn.Trainer(model, loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])

t0 = time.perf_counter()
trainer.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1, verbose=2)

score = trainer.evaluate(x_test, y_test)
print("Test loss:", score["loss"])
print("Test accuracy:", score["accuracy"])
record(args.json, "keras_mnist_convnet", epochs=epochs, train_size=len(x_train),
       test_accuracy=round(score["accuracy"], 4), seconds=round(time.perf_counter() - t0, 1))
print(f"test_accuracy: {score['accuracy']:.4f}")
