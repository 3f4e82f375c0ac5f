"""sluice_fuzz_target: one libFuzzer target, and the test that replays its seed corpus."""

def sluice_fuzz_target(name, deps, size = "small"):
    """Defines <name>_fuzz (binary) and <name>_fuzz_test from <name>_fuzz.cc.

    <name>_fuzz is a libFuzzer binary under --config=fuzz (tools/fuzz.sh builds it) and a
    replayer of the files or directories it is given otherwise; it is tagged manual, so `//...`
    leaves it alone. <name>_fuzz_test replays corpus/<name>/ with the default toolchain, so the
    seeds run in `bazel test //...`. Crashers (crashers/<name>/) are not replayed until fixed.

    Args:
      name: the target's name; its source is <name>_fuzz.cc.
      deps: what the source uses.
      size: the replay test's size.
    """
    native.cc_library(
        name = name + "_fuzz_lib",
        testonly = True,
        srcs = [name + "_fuzz.cc"],
        deps = deps,
        alwayslink = True,
    )
    native.cc_binary(
        name = name + "_fuzz",
        testonly = True,
        deps = [":" + name + "_fuzz_lib"] + select({
            "//tests/fuzz:libfuzzer": [],
            "//conditions:default": ["//tests/fuzz:replay_main"],
        }),
        linkopts = select({
            "//tests/fuzz:libfuzzer": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        tags = ["manual"],
    )
    native.cc_test(
        name = name + "_fuzz_test",
        size = size,
        args = ["tests/fuzz/corpus/" + name],
        data = native.glob(["corpus/" + name + "/*"]),
        deps = [
            ":" + name + "_fuzz_lib",
            "//tests/fuzz:replay_main",
        ],
    )
