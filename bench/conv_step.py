#!/usr/bin/env python3
"""Convolution training step, Sluice against PyTorch eager on the CPU, same threads.

One step: conv2d (NHWC for Sluice, NCHW for PyTorch, same arithmetic) 3x3, SAME, of a batch of
32 images 28x28x32 into 64 channels, ReLU, 2x2 max pooling, sum as the loss, the gradients of
the filter and the input, and a plain SGD update of the filter. The two sides alternate per
repetition so load from elsewhere hits both alike; the script prints the median steps per second
of each and the ratio Sluice / PyTorch, per thread count.

    eval "$(tools/python_env.sh)"      # the built module on PYTHONPATH
    /usr/bin/python3 bench/conv_step.py --threads 1 2 --repetitions 5

PyTorch comes from Debian's python3-torch, which the test command never installs: without it
the script measures Sluice alone and says so ("peer skipped").
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

BATCH, SIZE, IN_C, OUT_C, K = 32, 28, 32, 64, 3


def rate(step, min_time):
    """Steps per second of `step` over at least `min_time` seconds (after one warm-up)."""
    step()
    n, start = 0, time.perf_counter()
    while True:
        step()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return n / elapsed


def sluice_step(threads):
    import sluice as sl

    g = sl.Graph()
    with g.as_default():
        x = sl.placeholder(sl.float32, [BATCH, SIZE, SIZE, IN_C])
        w = sl.Variable(np.random.default_rng(0).normal(0, 0.05, (K, K, IN_C, OUT_C))
                        .astype(np.float32))
        y = sl.nn.max_pool(sl.nn.relu(sl.nn.conv2d(x, w, strides=1, padding="SAME")),
                           ksize=2, strides=2, padding="VALID")
        loss = sl.reduce_sum(y)
        gw, gx = sl.gradients(loss, [w, x])
        train = sl.assign_sub(w, gw * 1e-4)
        init = sl.global_variables_initializer()
    config = sl.ConfigProto(inter_op_parallelism_threads=threads,
                            intra_op_parallelism_threads=threads)
    sess = sl.Session(graph=g, config=config)
    sess.run(init)
    feed = {x: np.random.default_rng(1).normal(size=(BATCH, SIZE, SIZE, IN_C))
            .astype(np.float32)}
    return lambda: sess.run([train, gx], feed)


def torch_step(threads):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    w = (torch.randn(OUT_C, IN_C, K, K) * 0.05).requires_grad_()
    x = torch.randn(BATCH, IN_C, SIZE, SIZE).requires_grad_()
    pool = torch.nn.MaxPool2d(2)

    def step():
        y = pool(torch.relu(torch.nn.functional.conv2d(x, w, padding=1)))
        w.grad = x.grad = None
        y.sum().backward()
        with torch.no_grad():
            w.sub_(1e-4 * w.grad)
        return x.grad
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--min_time", type=float, default=2.0)
    args = parser.parse_args()
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
        print("peer skipped: python3-torch not installed (apt-get install -y python3-torch); "
              "measuring Sluice alone", file=sys.stderr)
    print("load average before: " + " ".join(open("/proc/loadavg").read().split()[:3]))
    for threads in args.threads:
        os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
        ours_step = sluice_step(threads)
        peer_step = torch_step(threads) if have_torch else None
        ours, peer = [], []
        for _ in range(args.repetitions):
            ours.append(rate(ours_step, args.min_time))
            if peer_step:
                peer.append(rate(peer_step, args.min_time))
        line = "threads {}: sluice {:.2f} steps/s".format(threads, statistics.median(ours))
        if peer:
            line += ", pytorch {:.2f} steps/s, ratio {:.2f}".format(
                statistics.median(peer), statistics.median(ours) / statistics.median(peer))
        print(line, flush=True)
    print("load average after: " + " ".join(open("/proc/loadavg").read().split()[:3]))


if __name__ == "__main__":
    main()
