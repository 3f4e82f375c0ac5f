"""TF1's `tf.app`: `app.flags` (Debian's python3-absl flags, as TF1's were) and `app.run`.

    flags = sl.app.flags
    flags.DEFINE_integer("steps", 100, "training steps")
    FLAGS = flags.FLAGS

    def main(argv):
        print(FLAGS.steps)

    if __name__ == "__main__":
        sl.app.run(main)
"""

import sys

from absl import flags  # noqa: F401  (re-exported: sl.app.flags.DEFINE_string, FLAGS, ...)


def run(main=None, argv=None):
    """Parses the command line into flags.FLAGS (arguments it does not know are passed on),
    calls main(remaining argv) (default: the __main__ module's `main`), and exits with its
    result. An unparsable flag value is a usage error naming the flag (exit status 2)."""
    args = sys.argv if argv is None else list(argv)
    try:
        remaining = flags.FLAGS(args, known_only=True)
    except flags.Error as e:
        print("{}: {}".format(args[0] if args else "program", e), file=sys.stderr)
        sys.exit(2)
    main = main or sys.modules["__main__"].main
    sys.exit(main(remaining))
