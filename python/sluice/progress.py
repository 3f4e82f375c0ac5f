"""Progress of a long training loop (`sl.progress.Progress`): steps done, steps/s, the last
loss and the time left, on one line of stderr.

    progress = sl.progress.Progress(total=1000, desc="train")
    for step in range(1000):
        _, loss = sess.run([train_op, loss_t], feed)
        progress.update(loss=loss)
    progress.close()               # the final line: steps, steps/s, loss, time taken

With Debian's `python3-tqdm` installed and stderr a terminal, tqdm draws the bar (its rate and
ETA, the loss as a postfix); otherwise a plain line is written at most every `every` seconds
(and at the end), so logs of non-interactive runs stay short.
"""

import sys
import time


def _duration(seconds):
    seconds = max(0.0, seconds)
    if seconds < 60:
        return "{:.1f} s".format(seconds)
    minutes, seconds = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return "{}h{:02d}m".format(hours, minutes) if hours else "{}m{:02d}s".format(minutes, seconds)


class Progress:
    """Counts steps (`update(n=1, loss=None)`) and reports them; `close()` prints the last
    line. `total` (optional) gives the ETA; `clock` and `out` are for tests."""

    def __init__(self, total=None, desc="", every=1.0, out=None, clock=None, use_tqdm=None):
        self.total, self.desc, self.every = total, desc, float(every)
        self.out = out if out is not None else sys.stderr
        self._clock = clock or time.monotonic
        self.start = self._last_print = self._clock()
        self.done, self.loss = 0, None
        self._bar = None
        if use_tqdm is None:
            use_tqdm = out is None and hasattr(self.out, "isatty") and self.out.isatty()
        if use_tqdm:
            try:
                import tqdm  # Debian's python3-tqdm, when installed.
                self._bar = tqdm.tqdm(total=total, desc=desc or None, unit="step")
            except ImportError:
                self._bar = None

    def update(self, n=1, loss=None):
        """Adds `n` steps; `loss` (a number or a 0-d array) is shown with the rate."""
        self.done += int(n)
        if loss is not None:
            self.loss = float(loss)
        if self._bar is not None:
            self._bar.update(int(n))
            if loss is not None:
                self._bar.set_postfix(loss="{:.4g}".format(self.loss), refresh=False)
            return
        now = self._clock()
        if now - self._last_print >= self.every:
            self._last_print = now
            self.out.write(self.line(now) + "\n")
            self.out.flush()

    def rate(self, now=None):
        """Steps per second so far."""
        elapsed = (now if now is not None else self._clock()) - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self, now=None):
        """The progress line: "desc 120/500 steps  85.3 steps/s  loss 0.2340  ETA 4.5 s"."""
        now = now if now is not None else self._clock()
        rate = self.rate(now)
        parts = [self.desc] if self.desc else []
        parts.append("{}/{} steps".format(self.done, self.total) if self.total
                     else "{} steps".format(self.done))
        parts.append("{:.1f} steps/s".format(rate))
        if self.loss is not None:
            parts.append("loss {:.4f}".format(self.loss))
        if self.total and rate > 0 and self.done < self.total:
            parts.append("ETA " + _duration((self.total - self.done) / rate))
        return "  ".join(parts)

    def close(self):
        """The final line: steps, rate, last loss and the time taken."""
        if self._bar is not None:
            self._bar.close()
            return
        now = self._clock()
        self.out.write("{}  in {}\n".format(self.line(now), _duration(now - self.start)))
        self.out.flush()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False
