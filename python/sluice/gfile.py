"""TF1's `tf.gfile` basics on the local file system (Sluice reads and writes local files only)."""

import glob as _glob
import os
import shutil

GFile = open
Open = open
FastGFile = open


def Exists(path):  # noqa: N802  (TF1's names)
    return os.path.exists(path)


def IsDirectory(path):  # noqa: N802
    return os.path.isdir(path)


def MakeDirs(path):  # noqa: N802
    os.makedirs(path, exist_ok=True)


def MkDir(path):  # noqa: N802
    os.mkdir(path)


def ListDirectory(path):  # noqa: N802
    return os.listdir(path)


def Glob(pattern):  # noqa: N802
    return _glob.glob(pattern)


def Remove(path):  # noqa: N802
    os.remove(path)


def DeleteRecursively(path):  # noqa: N802
    shutil.rmtree(path)


def Copy(src, dst, overwrite=False):  # noqa: N802
    if not overwrite and os.path.exists(dst):
        raise FileExistsError(dst)
    shutil.copyfile(src, dst)


def Rename(src, dst, overwrite=False):  # noqa: N802
    if not overwrite and os.path.exists(dst):
        raise FileExistsError(dst)
    os.replace(src, dst)
