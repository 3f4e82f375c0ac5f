"""A TensorFlow 1 style convolutional classifier, run by Sluice with only the import changed.

The model is the one of TF1's "Deep MNIST for experts" tutorial, smaller: two conv + max-pool
layers, a fully connected layer with dropout, a softmax readout, Adam. The data are generated:
16x16 grey images of one of four shapes (horizontal bar, vertical bar, diagonal, square) at a
random place, with noise, so the example needs no download.

    python3 examples/tf1_cnn_classifier.py --steps 300
    python3 examples/tf1_cnn_classifier.py --cluster      # the same on a 2-worker LocalCluster
"""

import argparse

import numpy as np

import sluice as tf  # The only line that differs from the TensorFlow 1 program.

SIZE, CLASSES = 16, 4


def make_images(n, rng):
    """n noisy images of the four shapes and their labels."""
    images = rng.normal(0.0, 0.3, size=(n, SIZE, SIZE, 1)).astype(np.float32)
    labels = rng.integers(0, CLASSES, size=n)
    for img, label in zip(images, labels):
        r, c = rng.integers(2, SIZE - 8, size=2)
        if label == 0:
            img[r + 3, c:c + 7, 0] += 1.5
        elif label == 1:
            img[r:r + 7, c + 3, 0] += 1.5
        elif label == 2:
            for k in range(7):
                img[r + k, c + k, 0] += 1.5
        else:
            img[r:r + 6, c, 0] += 1.5
            img[r:r + 6, c + 5, 0] += 1.5
            img[r, c:c + 6, 0] += 1.5
            img[r + 5, c:c + 6, 0] += 1.5
    return images, np.eye(CLASSES, dtype=np.float32)[labels]


def weight_variable(shape):
    return tf.Variable(tf.truncated_normal(shape, stddev=0.1, seed=1))


def bias_variable(shape):
    return tf.Variable(tf.constant(0.1, shape=shape))


def conv2d(x, W):
    return tf.nn.conv2d(x, W, strides=[1, 1, 1, 1], padding="SAME")


def max_pool_2x2(x):
    return tf.nn.max_pool(x, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")


def build(devices):
    """The tutorial's graph; layers go to devices[0] and devices[1] (None: no request)."""
    x = tf.placeholder(tf.float32, [None, SIZE, SIZE, 1])
    y_ = tf.placeholder(tf.float32, [None, CLASSES])
    keep_prob = tf.placeholder(tf.float32)
    with tf.device(devices[0]):
        W_conv1 = weight_variable([5, 5, 1, 16])
        b_conv1 = bias_variable([16])
        h_pool1 = max_pool_2x2(tf.nn.relu(conv2d(x, W_conv1) + b_conv1))
        W_conv2 = weight_variable([5, 5, 16, 32])
        b_conv2 = bias_variable([32])
        h_pool2 = max_pool_2x2(tf.nn.relu(conv2d(h_pool1, W_conv2) + b_conv2))
    with tf.device(devices[1]):
        W_fc1 = weight_variable([4 * 4 * 32, 64])
        b_fc1 = bias_variable([64])
        h_pool2_flat = tf.reshape(h_pool2, [-1, 4 * 4 * 32])
        h_fc1 = tf.nn.relu(tf.matmul(h_pool2_flat, W_fc1) + b_fc1)
        h_fc1_drop = tf.nn.dropout(h_fc1, keep_prob, seed=2)
        W_fc2 = weight_variable([64, CLASSES])
        b_fc2 = bias_variable([CLASSES])
        y_conv = tf.matmul(h_fc1_drop, W_fc2) + b_fc2
    cross_entropy = tf.reduce_mean(
        tf.nn.softmax_cross_entropy_with_logits(labels=y_, logits=y_conv))
    train_step = tf.train.AdamOptimizer(1e-3).minimize(cross_entropy)
    correct_prediction = tf.equal(tf.argmax(y_conv, 1), tf.argmax(y_, 1))
    accuracy = tf.reduce_mean(tf.cast(correct_prediction, tf.float32))
    return dict(x=x, y_=y_, keep_prob=keep_prob, loss=cross_entropy, train=train_step,
                accuracy=accuracy, init=tf.global_variables_initializer())


def train(sess, m, steps, rng):
    sess.run(m["init"])
    for i in range(steps):
        xs, ys = make_images(32, rng)
        if i % 50 == 0 or i == steps - 1:
            loss = sess.run(m["loss"], {m["x"]: xs, m["y_"]: ys, m["keep_prob"]: 1.0})
            print("step %4d  loss %.4f" % (i, loss), flush=True)
        sess.run(m["train"], {m["x"]: xs, m["y_"]: ys, m["keep_prob"]: 0.5})
    test_x, test_y = make_images(400, np.random.default_rng(1000))
    acc = sess.run(m["accuracy"], {m["x"]: test_x, m["y_"]: test_y, m["keep_prob"]: 1.0})
    print("test accuracy %.3f" % acc, flush=True)
    return acc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--cluster", action="store_true",
                        help="run on a LocalCluster of two workers (conv layers on one, the "
                             "classifier on the other)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    if args.cluster:
        with tf.LocalCluster(workers=2) as cluster:
            print("cluster:", cluster.target, flush=True)
            m = build(["/job:worker/task:0", "/job:worker/task:1"])
            with tf.Session(cluster.target) as sess:
                train(sess, m, args.steps, rng)
    else:
        m = build([None, None])
        with tf.Session() as sess:
            train(sess, m, args.steps, rng)


if __name__ == "__main__":
    main()
