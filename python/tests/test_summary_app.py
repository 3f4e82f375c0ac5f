"""Summaries and event files (checked against the published TFRecord framing with an
independent CRC-32C, and read back), the PNG plot, app.flags/app.run, gfile basics."""

import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import sluice as sl


def crc32c(data):
    """Bitwise CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), for the check."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(path):
    """The records of a TFRecord file, framing and checksums verified by hand."""
    data = open(path, "rb").read()
    out, offset = [], 0
    while offset < len(data):
        header = data[offset:offset + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[offset + 8:offset + 12])[0] == masked(crc32c(header))
        body = data[offset + 12:offset + 12 + length]
        tail = data[offset + 12 + length:offset + 16 + length]
        assert struct.unpack("<I", tail)[0] == masked(crc32c(body))
        out.append(body)
        offset += 16 + length
    return out


def test_crc32c_check_value():
    assert crc32c(b"123456789") == 0xE3069283  # The published check value.


def test_scalar_and_histogram_summaries_written_and_read_back(graph, sess, tmp_path):
    x = sl.placeholder(sl.float32, [None])
    with sl.name_scope("stats"):
        mean = sl.summary.scalar("mean", sl.reduce_mean(x))
    hist = sl.summary.histogram("values", x)
    merged = sl.summary.merge_all()
    assert merged is not None and mean.tag == "stats/mean"
    writer = sl.summary.FileWriter(str(tmp_path))
    for step in range(3):
        values = np.arange(4, dtype=np.float32) + step
        summary = sess.run(merged, {x: values})
        assert isinstance(summary, bytes)
        writer.add_summary(summary, step)
    writer.close()
    files = [f for f in os.listdir(tmp_path) if f.startswith("events.out.tfevents.")]
    assert len(files) == 1
    path = str(tmp_path / files[0])
    assert len(records(path)) == 4  # file_version, then one event per step
    events = list(sl.summary.summary_iterator(path))
    assert events[0].file_version == "brain.Event:2"
    assert [e.step for e in events[1:]] == [0, 1, 2]
    last = {v.tag: v for v in events[3].summary.value}
    assert last["stats/mean"].simple_value == pytest.approx(3.5)
    h = last["values"].histo
    assert (h.min, h.max, h.num, h.sum, h.sum_squares) == (2.0, 5.0, 4.0, 14.0, 54.0)
    assert sum(h.bucket) == 4 and list(h.bucket_limit) == sorted(h.bucket_limit)
    assert sl.summary.read_scalars(str(tmp_path)) == {
        "stats/mean": [(0, 1.5), (1, 2.5), (2, 3.5)]}


def test_a_file_cut_mid_record_reads_up_to_the_cut(graph, sess, tmp_path):
    v = sl.summary.scalar("v", sl.constant(1.0))
    with sl.summary.FileWriter(str(tmp_path)) as writer:
        for step in range(5):
            writer.add_summary(sess.run(v), step)
    path = str(tmp_path / os.listdir(tmp_path)[0])
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-7])  # The last record loses its tail.
    assert [e.step for e in sl.summary.summary_iterator(path)][1:] == [0, 1, 2, 3]
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(damaged))
    with pytest.raises(ValueError, match="corrupt record"):
        list(sl.summary.summary_iterator(path))


def test_scalar_summary_refuses_a_vector(graph):
    with pytest.raises(ValueError, match="needs a scalar"):
        sl.summary.scalar("bad", sl.constant([1.0, 2.0]))
    assert sl.summary.merge_all() is None


def test_plot_renders_the_scalars_to_png(graph, sess, tmp_path):
    loss = sl.placeholder(sl.float32, [])
    s = sl.summary.scalar("loss", loss)
    with sl.summary.FileWriter(str(tmp_path)) as w:
        for step in range(10):
            w.add_summary(sess.run(s, {loss: 1.0 / (step + 1)}), step)
    out = sl.summary.plot(str(tmp_path))
    assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    cmd = subprocess.run([sys.executable, "-m", "sluice.summary", str(tmp_path),
                          str(tmp_path / "cli.png")], capture_output=True, text=True)
    assert cmd.returncode == 0, cmd.stderr
    assert os.path.getsize(tmp_path / "cli.png") > 1000
    empty = subprocess.run([sys.executable, "-m", "sluice.summary", str(tmp_path / "none")],
                           capture_output=True, text=True)
    assert empty.returncode == 1 and "no scalar summaries" in empty.stderr


def test_app_flags_and_run(tmp_path):
    program = tmp_path / "prog.py"
    program.write_text(textwrap.dedent("""
        import sluice as tf
        flags = tf.app.flags
        flags.DEFINE_integer("steps", 10, "steps")
        flags.DEFINE_string("name", "x", "a name")
        FLAGS = flags.FLAGS

        def main(argv):
            print(FLAGS.steps, FLAGS.name, argv[1:])

        if __name__ == "__main__":
            tf.app.run()
        """))
    run = subprocess.run([sys.executable, str(program), "--steps=7", "extra"],
                         capture_output=True, text=True, env=dict(os.environ))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "7 x ['extra']"
    bad = subprocess.run([sys.executable, str(program), "--steps=many"], capture_output=True,
                         text=True, env=dict(os.environ))
    assert bad.returncode == 2 and "steps" in bad.stderr


def test_gfile_basics(tmp_path):
    d = str(tmp_path / "a" / "b")
    sl.gfile.MakeDirs(d)
    assert sl.gfile.IsDirectory(d) and sl.gfile.Exists(d)
    with sl.gfile.GFile(os.path.join(d, "f.txt"), "w") as f:
        f.write("hi")
    assert sl.gfile.ListDirectory(d) == ["f.txt"]
    assert sl.gfile.Glob(os.path.join(d, "*.txt")) == [os.path.join(d, "f.txt")]
    sl.gfile.DeleteRecursively(str(tmp_path / "a"))
    assert not sl.gfile.Exists(d)
