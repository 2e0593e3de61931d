"""The PyYAML-free reader of ``.dvc`` files must agree with yaml.safe_load or step aside."""

from __future__ import annotations

import itertools
import random

import pytest
import yaml

from dvc_secure.core.sidecar.metafile import _load_plain, parse_outputs

DVC_ADD = b"""outs:
- md5: 2dbb3d974eb0226f713ae47f891f04f0
  size: 20
  hash: md5
  path: d042.csv
"""

TRICKY = ["yes", "No", "ON", "off", "true", "FALSE", "null", "Null", "~", "y", "n", "nan",
          "0", "00", "0123", "089", "123", "-1", "+1", "1_000", "1:30", "1.5", "1.", ".5",
          ".inf", "1e5", "0e5", "0b101", "0bad", "0x1F", "0xyz", "2001-12-14", "2001-12-14t1",
          "5f0a9f38b2d1f6e1d0c1a8b9c7e3c1aa", "0b3f9f38b2d1f6e1d0c1a8b9c7e3c1aa",
          "123456.dir", "5f0a.dir", "0x5f.dir", "data/d.csv", "/abs", "_x", "a-b", "a.b",
          "<<", "=", "a b", "a #c", "'q'", '"q"', "&a", "*a", "!t", "@x", "%x", "a:b",
          "-", "- x", "?", "[1]", "{a: 1}", "|", ">", "\u00e9", "\t", "a\r"]


def _agrees(data: bytes) -> bool:
    fast = _load_plain(data)
    return fast is None or fast == yaml.safe_load(data)


def test_dvc_add_output_takes_the_plain_path() -> None:
    assert _load_plain(DVC_ADD) == yaml.safe_load(DVC_ADD)
    out = parse_outputs(DVC_ADD, "data/d042.csv.dvc")["d042.csv"]
    assert (out.oid, out.size, out.remote) == ("2dbb3d974eb0226f713ae47f891f04f0", 20, None)


@pytest.mark.parametrize("value", TRICKY)
def test_tricky_scalar_is_read_as_yaml_reads_it(value: str) -> None:
    for template in ("outs:\n- md5: {v}\n  path: x\n", "md5: {v}\n", "{v}: 1\n",
                     "outs:\n- path: x\n  {v}: 1\n", "outs:\n- path: {v}\n  remote: {v}\n"):
        data = template.format(v=value).encode("utf-8")
        try:
            yaml.safe_load(data)
        except yaml.YAMLError:
            assert _load_plain(data) is None, data
            continue
        assert _agrees(data), data


def test_shapes_other_than_dvc_s_step_aside() -> None:
    for text in ["outs:\n  - md5: a\n", "outs:\n- md5: a\n    size: 1\n", "outs:\n- - a\n",
                 "outs:\n- a\n", "meta:\n  k: v\n", "outs:\n- md5: a\n  md5: b\n",
                 "a: 1\na: 2\n", "# c\nouts:\n", "---\nouts:\n", "outs: []\n",
                 "outs:\n- md5: a\n  meta:\n", "a: 1\n- b: 2\n", "", "\n",
                 "outs:\r\n- md5: a\r\n", "outs:\n\t- md5: a\n"]:
        assert _load_plain(text.encode()) is None, text


def test_random_documents_agree_with_yaml() -> None:
    rng = random.Random(4)
    keys = ["outs", "md5", "size", "path", "hash", "remote", "push", "deps", "yes", "x_1"]
    for _ in range(3000):
        lines = []
        for _ in range(rng.randint(1, 6)):
            shape = rng.random()
            key = rng.choice(keys)
            if shape < 0.3:
                lines.append(f"{key}: {rng.choice(TRICKY)}")
            elif shape < 0.5:
                lines.append(f"{key}:")
            else:
                lines.append(f"{rng.choice(['- ', '  ', ''])}{key}: {rng.choice(TRICKY)}")
        data = ("\n".join(lines) + rng.choice(["\n", "", "\n\n"])).encode("utf-8")
        try:
            yaml.safe_load(data)
        except yaml.YAMLError:
            assert _load_plain(data) is None, data
            continue
        assert _agrees(data), data


def test_every_pair_of_list_items_agrees() -> None:
    for a, b in itertools.product(["md5: abc", "size: 3", "path: x", "remote: r"], repeat=2):
        data = f"outs:\n- {a}\n  {b}\n- {b}\n".encode()
        assert _agrees(data), data
