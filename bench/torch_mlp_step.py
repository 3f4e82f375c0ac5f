"""PyTorch eager peer of bench/train_step_bench.cc: one SGD training step of a 784-1024-1024-10
ReLU MLP on a fixed batch of 64 (float32, softmax cross-entropy), loss computed every step.

Prints one JSON object per repetition: {"threads": N, "steps_per_s": ..., "ms_per_step": ...}.
Run it with /usr/bin/python3 (Debian's python3-torch). The thread count goes to
torch.set_num_threads; Debian's torch does its GEMMs in the system BLAS (OpenBLAS, whose own
threads OPENBLAS_NUM_THREADS sets: bench/train_step.sh sets it to the same N before starting
this script). Exits with status 2 and a "skipped:" line when torch is not installed.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_mlp_step.py --threads 1
"""
import argparse
import json
import sys
import time

try:
    import torch
except ImportError:
    print("skipped: python3-torch not installed (apt-get install -y python3-torch)")
    sys.exit(2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min_time", type=float, default=2.0, help="seconds per repetition")
    parser.add_argument("--repetitions", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(42)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 1024), torch.nn.ReLU(),
        torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
        torch.nn.Linear(1024, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.randn(64, 784)
    y = torch.randint(0, 10, (64,))

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    first = step().item()
    for _ in range(4):
        last = step().item()
    if not last < first:
        print("error: the loss did not decrease during warm-up", file=sys.stderr)
        sys.exit(1)
    for _ in range(args.repetitions):
        steps = 0
        start = time.perf_counter()
        elapsed = 0.0
        while elapsed < args.min_time:
            step()
            steps += 1
            elapsed = time.perf_counter() - start
        print(json.dumps({"threads": args.threads, "steps_per_s": steps / elapsed,
                          "ms_per_step": 1000 * elapsed / steps,
                          "torch": torch.__version__,
                          "blas": "generic (system libblas)"
                          if "BLAS_INFO=generic" in torch.__config__.show() else "other"}),
              flush=True)


if __name__ == "__main__":
    main()
