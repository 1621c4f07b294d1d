"""scripts/qapi-gen.py on small schemas: what it accepts, what it refuses and why.

No VM needed.  The real schema is exercised by the build and test_qmp.py.
"""
import os
import subprocess
import sys

import pytest

SOURCE = os.environ.get("SEN_SOURCE_DIR", ".")
GEN = os.path.join(SOURCE, "scripts", "qapi-gen.py")


def gen(tmp_path, text, *args):
    schema = tmp_path / "s.json"
    schema.write_text(text)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, GEN, "-o", str(out), "--doc",
                           str(tmp_path / "s.md"), *args, str(schema)],
                          capture_output=True, text=True)


GOOD = """
##
# @Color:
##
{ 'enum': 'Color', 'data': [ 'red', 'green' ] }

##
# @Paint:
##
{ 'struct': 'Paint', 'data': { 'color': 'Color', '*coats': 'int' } }

##
# @paint-wall:
#
# Paints a wall.
#
# @wall: which one
#
# -> { "execute": "paint-wall", "arguments": { "wall": "north", "paint": { "color": "red" } } }
# <- { "return": [ { "color": "red" } ] }
##
{ 'command': 'paint-wall', 'data': { 'wall': 'str', '*paint': 'Paint', '*n': 'uint64' },
  'returns': [ 'Paint' ], 'allow-preconfig': true }

##
# @WALL_PAINTED:
##
{ 'event': 'WALL_PAINTED', 'data': { 'wall': 'str', '*color': 'Color' } }
"""


def test_good_schema(tmp_path):
    r = gen(tmp_path, GOOD)
    assert r.returncode == 0, r.stderr
    h = (tmp_path / "out" / "qapi-generated.h").read_text()
    assert ("json_t *qmp_paint_wall(QmpCtx *ctx, const char *wall, bool has_paint, "
            "json_t *paint, bool has_n, uint64_t n, Error **errp)") in h
    assert ("void qapi_event_send_wall_painted(Machine *m, const char *wall, "
            "bool has_color, const char *color);") in h
    c = (tmp_path / "out" / "qapi-generated.c").read_text()
    assert '"paint-wall", qmp_marshal_paint_wall, false, true' in c
    md = (tmp_path / "s.md").read_text()
    assert "### `paint-wall`" in md and "Paints a wall." in md
    assert "| `wall` | str | which one |" in md
    assert '-> { "execute": "paint-wall"' in md


UNION = """
{ 'enum': 'Kind', 'data': [ 'disk', 'nic', 'none' ] }
{ 'struct': 'DiskOpts', 'data': { 'file': 'str', '*ro': 'bool' } }
{ 'struct': 'NicOpts', 'data': { '*mac': 'str' } }

##
# @Thing:
##
{ 'union': 'Thing', 'base': { 'id': 'str', 'kind': 'Kind' }, 'discriminator': 'kind',
  'data': { 'disk': 'DiskOpts', 'nic': 'NicOpts' } }

##
# @thing-add:
#
# Adds a thing.
##
{ 'command': 'thing-add', 'data': 'Thing', 'boxed': true }
"""


def test_union_and_boxed(tmp_path):
    r = gen(tmp_path, UNION)
    assert r.returncode == 0, r.stderr
    h = (tmp_path / "out" / "qapi-generated.h").read_text()
    assert "bool qmp_thing_add(QmpCtx *ctx, json_t *arg, Error **errp)" in h
    c = (tmp_path / "out" / "qapi-generated.c").read_text()
    # The discriminator is checked first, then base + the variant's members.
    check = c[c.index("static bool qapi_check_thing(json_t *v, const char *what, "
                      "Error **errp)\n{"):]
    check = check[:check.index("\n}\n")]
    assert check.index('json_object_get(v, "kind")') < check.index('"disk") == 0')
    assert '"Parameter \'%s\' is unexpected"' in check
    assert 'json_object_get(v, "file")' in check and 'json_object_get(v, "mac")' in check
    assert "qapi_check_thing(args, \"\", errp)" in c
    md = (tmp_path / "s.md").read_text()
    assert "Arguments: the members of `Thing`" in md
    assert "`Thing` (union on `kind`)" in md


@pytest.mark.parametrize("text, msg", [
    ("{ 'union': 'U', 'data': {} }", "the discriminator must be"),
    ("{ 'enum': 'K', 'data': [ 'a' ] }\n{ 'struct': 'A', 'data': {} }\n"
     "{ 'union': 'U', 'base': { 'k': 'K' }, 'discriminator': 'k', 'data': { 'b': 'A' } }",
     "'b' is not a value of K"),
    ("{ 'enum': 'K', 'data': [ 'a' ] }\n"
     "{ 'union': 'U', 'base': { 'k': 'K' }, 'discriminator': 'k', 'data': { 'a': 'K' } }",
     "variant 'a' must be a struct"),
    ("{ 'enum': 'K', 'data': [ 'a' ] }\n{ 'struct': 'A', 'data': { 'k': 'str' } }\n"
     "{ 'union': 'U', 'base': { 'k': 'K' }, 'discriminator': 'k', 'data': { 'a': 'A' } }",
     "repeats base member(s) k"),
    ("{ 'union': 'U', 'base': { 'k': 'str' }, 'discriminator': 'k', 'data': {} }",
     "the discriminator must be"),
    ("{ 'command': 'c', 'data': { 'a': 'Nope' } }", "unknown type 'Nope'"),
    ("{ 'command': 'c', 'returns': [ 'int', 'str' ] }", "an array type"),
    ("{ 'command': 'c', 'boxed': true }", "a boxed command's 'data' names a struct"),
    ("{ 'command': 'c', 'data': 'Nope', 'boxed': true }", "a boxed command's 'data'"),
    ("{ 'struct': 'S', 'data': {}, 'if': 'X' }", "unsupported key(s) if"),
    ("{ 'enum': 'E', 'data': [] }\n{ 'enum': 'E', 'data': [] }", "defined twice"),
    ("{ 'command': 'c', 'data': [ 'a' ] }", "must be a dict"),
    ("{ 'command': 'c'", "unterminated"),
])
def test_bad_schema(tmp_path, text, msg):
    r = gen(tmp_path, text)
    assert r.returncode == 1
    assert msg in r.stderr
