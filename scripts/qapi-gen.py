#!/usr/bin/python3
"""Generates the QMP glue from the qapi/*.json schema (QEMU's QAPI shape, a subset).

  qapi-gen.py -o OUTDIR SCHEMA.json...     qapi-generated.h and qapi-generated.c
  qapi-gen.py --doc OUT.md SCHEMA.json...  the command and event reference (docs/qmp.md)

Supported expressions: enum, struct (members '*name' are optional), union (QEMU's
discriminated union: 'base' an inline member dict or a struct, 'discriminator' a base
member of enum type, 'data' a struct per enum value; values without one add no members),
command (data: an inline member dict, returns: a type or [type]; with 'boxed': true, data
names a struct or union), event (data: an inline member dict).
Built-in types: str, int, int64, uint64, size, number, bool, any.

For every command the C side gets, in qapi-generated.h,
    json_t *qmp_<name>(QmpCtx *ctx, <arguments>, Error **errp);   when it 'returns'
    bool qmp_<name>(QmpCtx *ctx, <arguments>, Error **errp);      otherwise
with an optional argument passed as has_<arg> + <arg>; a boxed command gets the whole
checked argument object instead:  bool qmp_<name>(QmpCtx *ctx, json_t *arg, Error **errp).  The generated marshaller checks
the argument object (types, required, unexpected members) before the call, and checks
what the command returns against the schema, so a returned shape cannot drift from the
documentation.  Events get qapi_event_send_<name>(Machine *m, <data members>).

Standard library only: meson runs it at build time with /usr/bin/python3.
"""
import argparse
import ast
import json
import os
import re
import sys

BUILTINS = {
    # name: (json-type for introspection, C type, checker)
    "str": ("string", "const char *"),
    "int": ("int", "int64_t"),
    "int64": ("int", "int64_t"),
    "uint64": ("int", "uint64_t"),
    "size": ("int", "uint64_t"),
    "number": ("number", "double"),
    "bool": ("boolean", "bool"),
    "any": ("value", "json_t *"),
}


ALLOWED_KEYS = {
    "enum": {"enum", "data"},
    "struct": {"struct", "data"},
    "union": {"union", "base", "discriminator", "data"},
    "command": {"command", "data", "returns", "allow-oob", "allow-preconfig", "boxed"},
    "event": {"event", "data"},
}


class SchemaError(Exception):
    pass


class Expr:
    def __init__(self, kind, name, body, doc, where):
        self.kind, self.name, self.body, self.doc, self.where = kind, name, body, doc, where


def c_name(name):
    return re.sub(r"[^A-Za-z0-9_]", "_", name).lower()


def parse_file(path, sections):
    """Splits a schema file into expressions, each with the ## doc block before it.

    A doc block whose first line is "= Title" is free text for the reference instead; it
    goes to sections as (title, lines)."""
    exprs = []
    doc, in_doc = [], False
    text, start = "", 0
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for lineno, line in enumerate(lines, 1):
        stripped = line.strip()
        if not text and stripped.startswith("#"):
            if stripped == "##":
                in_doc = not in_doc
                if in_doc:
                    doc = []
                elif doc and doc[0].startswith("= "):
                    body = doc[1:]
                    while body and not body[0].strip():
                        body.pop(0)
                    sections.append((doc[0][2:], body))
                    doc = []
                continue
            if in_doc:
                doc.append(stripped[2:] if stripped.startswith("# ") else stripped[1:])
            continue
        if not text and not stripped:
            continue
        if not text:
            start = lineno
        text += re.sub(r"\s#.*$", "", line) + "\n"
        try:
            pyish = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", text))
            body = ast.literal_eval(pyish)
        except SyntaxError:
            continue  # the expression goes on over the next line
        except ValueError as e:
            raise SchemaError(f"{path}:{start}: {e}")
        text = ""
        where = f"{path}:{start}"
        if not isinstance(body, dict):
            raise SchemaError(f"{where}: an expression must be a dict")
        kinds = [k for k in ("enum", "struct", "union", "command", "event") if k in body]
        if len(kinds) != 1:
            raise SchemaError(f"{where}: expected one of enum, struct, union, command, event")
        unknown = set(body) - ALLOWED_KEYS[kinds[0]]
        if unknown:
            # 'if', 'features', 'alternate' ... are QAPI features this generator lacks:
            # refuse them rather than generate something subtly different.
            raise SchemaError(f"{where}: unsupported key(s) {', '.join(sorted(unknown))}")
        exprs.append(Expr(kinds[0], body[kinds[0]], body, doc, where))
        doc = []
    if text.strip():
        raise SchemaError(f"{path}:{start}: unterminated expression")
    return exprs


class Schema:
    def __init__(self, paths):
        self.exprs = []
        self.sections = []
        for p in paths:
            self.exprs += parse_file(p, self.sections)
        self.types = {}
        for e in self.exprs:
            if e.kind in ("enum", "struct", "union"):
                if e.name in self.types or e.name in BUILTINS:
                    raise SchemaError(f"{e.where}: type '{e.name}' defined twice")
                self.types[e.name] = e
        self.commands = [e for e in self.exprs if e.kind == "command"]
        self.events = [e for e in self.exprs if e.kind == "event"]
        for e in self.exprs:
            if e.kind == "union":
                self.check_union(e)
            if e.kind == "command" and e.body.get("boxed"):
                t = e.body.get("data")
                if not isinstance(t, str) or t not in self.types or \
                        self.types[t].kind not in ("struct", "union"):
                    raise SchemaError(f"{e.where}: a boxed command's 'data' names a struct "
                                      "or union")
            for m in self.members(e):
                self.check_type(m[1], e.where)
            if e.kind == "command" and "returns" in e.body:
                self.check_type(e.body["returns"], e.where)

    def check_union(self, e):
        base = {m: (t, opt) for m, t, opt in self.base_members(e)}
        tag = e.body.get("discriminator")
        if tag not in base or base[tag][1] or base[tag][0] not in self.types or \
                self.types[base[tag][0]].kind != "enum":
            raise SchemaError(f"{e.where}: the discriminator must be a required base member "
                              "of an enum type")
        values = self.types[base[tag][0]].body["data"]
        data = e.body.get("data")
        if not isinstance(data, dict):
            raise SchemaError(f"{e.where}: a union's 'data' maps enum values to structs")
        for case, t in data.items():
            if case not in values:
                raise SchemaError(f"{e.where}: '{case}' is not a value of {base[tag][0]}")
            if t not in self.types or self.types[t].kind != "struct":
                raise SchemaError(f"{e.where}: variant '{case}' must be a struct")
            clash = set(base) & {m for m, _, _ in self.members(self.types[t])}
            if clash:
                raise SchemaError(f"{e.where}: variant '{case}' repeats base member(s) "
                                  f"{', '.join(sorted(clash))}")

    def base_members(self, e):
        """[(name, type, optional)] of a union's base (inline dict or struct name)."""
        base = e.body.get("base", {})
        if isinstance(base, str):
            if base not in self.types or self.types[base].kind != "struct":
                raise SchemaError(f"{e.where}: base '{base}' is not a struct")
            return self.members(self.types[base])
        return self.members(Expr("struct", e.name, {"data": base}, [], e.where))

    def variants(self, e):
        """[(case, members of base + variant)] of a union, in enum order."""
        tag = e.body["discriminator"]
        enum = dict((m, t) for m, t, _ in self.base_members(e))[tag]
        out = []
        for case in self.types[enum].body["data"]:
            extra = self.members(self.types[e.body["data"][case]]) \
                if case in e.body["data"] else []
            out.append((case, self.base_members(e) + extra))
        return out

    def args(self, e):
        """The struct or union a boxed command takes, else None."""
        return self.types[e.body["data"]] if e.body.get("boxed") else None

    def check_type(self, t, where):
        if isinstance(t, list):
            if len(t) != 1:
                raise SchemaError(f"{where}: an array type is [ 'TYPE' ]")
            t = t[0]
        if t not in BUILTINS and t not in self.types:
            raise SchemaError(f"{where}: unknown type '{t}'")

    def members(self, e):
        """[(name, type, optional)] of a struct, command or event (a union: its base; a
        boxed command: none of its own)."""
        if e.kind == "enum" or (e.kind == "command" and e.body.get("boxed")):
            return []
        if e.kind == "union":
            return self.base_members(e)
        data = e.body.get("data", {})
        if not isinstance(data, dict):
            raise SchemaError(f"{e.where}: 'data' must be a dict of members")
        out = []
        for k, t in data.items():
            opt = k.startswith("*")
            out.append((k[1:] if opt else k, t, opt))
        return out


# ---- C generation ----

def type_key(t):
    return f"[{t[0]}]" if isinstance(t, list) else t


def checker_name(t):
    if isinstance(t, list):
        return f"qapi_check_array_{c_name(t[0])}"
    return f"qapi_check_{c_name(t)}"


def gen_checkers(schema):
    """A checker per type: bool qapi_check_T(json_t *v, const char *what, Error **errp)."""
    out = []
    wanted = set(BUILTINS) | set(schema.types)
    arrays = set()
    for e in schema.exprs:
        for _, t, _ in schema.members(e):
            if isinstance(t, list):
                arrays.add(t[0])
        if e.kind == "command" and isinstance(e.body.get("returns"), list):
            arrays.add(e.body["returns"][0])
    for t in sorted(wanted):
        out.append(f"static bool {checker_name(t)}(json_t *v, const char *what, Error **errp) "
                   "G_GNUC_UNUSED;")
    for t in sorted(arrays):
        out.append(f"static bool {checker_name([t])}(json_t *v, const char *what, Error **errp) "
                   "G_GNUC_UNUSED;")
    out.append("")
    simple = {
        "str": ("json_is_string(v)", "string"),
        "int": ("json_is_integer(v)", "integer"),
        "int64": ("json_is_integer(v)", "integer"),
        "uint64": ("json_is_integer(v) && json_integer_value(v) >= 0", "integer"),
        "size": ("json_is_integer(v) && json_integer_value(v) >= 0", "integer"),
        "number": ("json_is_number(v)", "number"),
        "bool": ("json_is_boolean(v)", "boolean"),
        "any": ("v != NULL", "value"),
    }
    for t, (cond, expect) in simple.items():
        out.append(f"""static bool {checker_name(t)}(json_t *v, const char *what, Error **errp)
{{
    if (!({cond})) {{
        error_setg(errp, "Invalid parameter type for '%s', expected: {expect}", what);
        return false;
    }}
    return true;
}}
""")
    for t in sorted(arrays):
        out.append(f"""static bool {checker_name([t])}(json_t *v, const char *what, Error **errp)
{{
    size_t i;
    json_t *el;

    if (!json_is_array(v)) {{
        error_setg(errp, "Invalid parameter type for '%s', expected: array", what);
        return false;
    }}
    json_array_foreach(v, i, el) {{
        g_autofree char *elwhat = g_strdup_printf("%s[%zu]", what, i);
        if (!{checker_name(t)}(el, elwhat, errp)) {{
            return false;
        }}
    }}
    return true;
}}
""")
    for name in sorted(schema.types):
        e = schema.types[name]
        if e.kind == "enum":
            vals = ", ".join(json.dumps(v) for v in e.body["data"]) + ", NULL"
            out.append(f"""static bool {checker_name(name)}(json_t *v, const char *what, Error **errp)
{{
    static const char *const values[] = {{ {vals} }};

    if (!json_is_string(v)) {{
        error_setg(errp, "Invalid parameter type for '%s', expected: string", what);
        return false;
    }}
    for (size_t i = 0; values[i]; i++) {{
        if (strcmp(values[i], json_string_value(v)) == 0) {{
            return true;
        }}
    }}
    error_setg(errp, "Parameter '%s' does not accept value '%s'", what, json_string_value(v));
    return false;
}}
""")
        elif e.kind == "union":
            out.append(gen_union_checker(schema, e))
        else:
            out.append(gen_struct_checker(schema, e))
    return "\n".join(out)


def gen_member_checks(schema, members, obj, prefix_expr):
    """C statements checking the members of json object `obj`; what = prefix + name."""
    lines = []
    known = " && ".join(f'strcmp(key, "{m}") != 0' for m, _, _ in members) or "true"
    lines.append(f"""    const char *key;
    json_t *val;
    json_object_foreach({obj}, key, val) {{
        if ({known}) {{
            g_autofree char *name = g_strconcat({prefix_expr}, key, NULL);
            error_setg(errp, "Parameter '%s' is unexpected", name);
            return false;
        }}
    }}""")
    for m, t, opt in members:
        lines.append(f"""    {{
        json_t *mv = json_object_get({obj}, "{m}");
        g_autofree char *name = g_strconcat({prefix_expr}, "{m}", NULL);
        if (!mv) {{""")
        if opt:
            lines.append("            /* optional */")
        else:
            lines.append("""            error_setg(errp, "Parameter '%s' is missing", name);
            return false;""")
        lines.append(f"""        }} else if (!{checker_name(t)}(mv, name, errp)) {{
            return false;
        }}
    }}""")
    return "\n".join(lines)


def gen_object_checker_head(e):
    """Opening of a struct or union checker: refuse a non-object, then the member-name
    prefix ("what." or nothing at top level) both kinds build their member names from."""
    return f"""static bool {checker_name(e.name)}(json_t *v, const char *what, Error **errp)
{{
    if (!json_is_object(v)) {{
        error_setg(errp, "Invalid parameter type for '%s', expected: object", what);
        return false;
    }}
    const char *prefix = *what ? what : "";
    const char *dot = *what ? "." : "";"""


def gen_struct_checker(schema, e):
    members = schema.members(e)
    return f"""{gen_object_checker_head(e)}
{gen_member_checks(schema, members, "v", "prefix, dot")}
    return true;
}}
"""


def gen_union_checker(schema, e):
    """The discriminator first (missing / not a value of its enum: QEMU's errors), then
    the members of base + that variant, unexpected members refused."""
    tag = e.body["discriminator"]
    enum = dict((m, t) for m, t, _ in schema.base_members(e))[tag]
    cases = []
    for case, members in schema.variants(e):
        checks = gen_member_checks(schema, members, "v", "prefix, dot").replace("\n", "\n    ")
        cases.append(f"""    if (strcmp(json_string_value(tag), "{case}") == 0) {{
    {checks}
        return true;
    }}""")
    body = "\n".join(cases)
    return f"""{gen_object_checker_head(e)}
    json_t *tag = json_object_get(v, "{tag}");
    g_autofree char *tagname = g_strconcat(prefix, dot, "{tag}", NULL);
    if (!tag) {{
        error_setg(errp, "Parameter '%s' is missing", tagname);
        return false;
    }}
    if (!{checker_name(enum)}(tag, tagname, errp)) {{
        return false;
    }}
{body}
    /* Unreachable (every enum value has a case above), but a client must never abort us. */
    error_setg(errp, "Parameter '%s' does not accept value '%s'", tagname,
               json_string_value(tag));
    return false;
}}
"""


def c_param(t):
    if isinstance(t, list) or t in schema_types_struct:
        return "json_t *"
    if t in BUILTINS:
        return BUILTINS[t][1]
    return "const char *"  # enum: the checked string


schema_types_struct = set()


def c_getter(t, var):
    if isinstance(t, list) or t in schema_types_struct or t == "any":
        return var
    return {
        "str": f"json_string_value({var})",
        "int": f"json_integer_value({var})",
        "int64": f"json_integer_value({var})",
        "uint64": f"(uint64_t)json_integer_value({var})",
        "size": f"(uint64_t)json_integer_value({var})",
        "number": f"json_number_value({var})",
        "bool": f"json_is_true({var})",
    }.get(t, f"json_string_value({var})")


def command_params(schema, e):
    params = ["QmpCtx *ctx"]
    if e.body.get("boxed"):
        params.append("json_t *arg")
    for m, t, opt in schema.members(e):
        if opt:
            params.append(f"bool has_{c_name(m)}")
        params.append(f"{c_param(t)}{'' if c_param(t).endswith('*') else ' '}{c_name(m)}")
    params.append("Error **errp")
    return ", ".join(params)


def command_proto(schema, e):
    ret = "json_t *" if "returns" in e.body else "bool "
    return f"{ret}qmp_{c_name(e.name)}({command_params(schema, e)})"


def event_proto(schema, e):
    params = ["Machine *m"]
    for m, t, opt in schema.members(e):
        if opt:
            params.append(f"bool has_{c_name(m)}")
        params.append(f"{c_param(t)}{'' if c_param(t).endswith('*') else ' '}{c_name(m)}")
    return f"void qapi_event_send_{c_name(e.name)}({', '.join(params)})"


def json_builder(t, var):
    if isinstance(t, list) or t in schema_types_struct or t == "any":
        return f"json_incref({var})"
    return {
        "int": f"json_integer({var})",
        "int64": f"json_integer({var})",
        "uint64": f"json_integer((json_int_t){var})",
        "size": f"json_integer((json_int_t){var})",
        "number": f"json_real({var})",
        "bool": f"json_boolean({var})",
    }.get(t, f"json_string({var})")


def gen_c(schema):
    h = ["/* Generated by scripts/qapi-gen.py from the qapi/ schema: do not edit. */",
         "#ifndef QAPI_GENERATED_H", "#define QAPI_GENERATED_H", "",
         '#include "monitor/qmp-dispatch.h"', ""]
    c = ["/* Generated by scripts/qapi-gen.py from the qapi/ schema: do not edit. */",
         "#include <string.h>", '#include "qapi-generated.h"', '#include "sen/monitor.h"', "",
         gen_checkers(schema)]
    for e in schema.commands:
        h.append(command_proto(schema, e) + " G_GNUC_WARN_UNUSED_RESULT;")
        members = schema.members(e)
        c.append(f"static bool qmp_marshal_{c_name(e.name)}(QmpCtx *ctx, json_t *args, "
                 "json_t **ret, Error **errp)\n{")
        call = ["ctx"]
        if schema.args(e):
            c.append(f'    if (!{checker_name(schema.args(e).name)}(args, "", errp)) {{\n'
                     '        return false;\n    }')
            call.append("args")
        else:
            c.append(gen_member_checks(schema, members, "args", '""'))
        for m, t, opt in members:
            var = f"arg_{c_name(m)}"
            c.append(f'    json_t *{var} = json_object_get(args, "{m}");')
            if opt:
                call.append(f"{var} != NULL")
                default = "0" if c_param(t) not in ("const char *", "json_t *") else "NULL"
                c.append(f"    (void){var};")
                call.append(f"{var} ? {c_getter(t, var)} : {default}")
            else:
                call.append(c_getter(t, var))
        call.append("errp")
        if "returns" in e.body:
            rt = e.body["returns"]
            c.append(f"""    json_t *r = qmp_{c_name(e.name)}({", ".join(call)});
    if (!r) {{
        return false;
    }}
    /* A shape that does not match the schema is a Sen bug: refuse to send it. */
    Error *bad = NULL;
    if (!{checker_name(rt)}(r, "", &bad)) {{
        error_setg(errp, "internal error: {e.name} returned a value not matching the "
                   "schema (%s)", error_get_pretty(bad));
        error_free(bad);
        json_decref(r);
        return false;
    }}
    *ret = r;
    return true;
}}
""")
        else:
            c.append(f"""    if (!qmp_{c_name(e.name)}({", ".join(call)})) {{
        return false;
    }}
    *ret = json_object();
    return true;
}}
""")
    c.append("const QmpCommand qmp_commands[] = {")
    for e in schema.commands:
        c.append(f'    {{ "{e.name}", qmp_marshal_{c_name(e.name)}, '
                 f'{"true" if e.body.get("allow-oob") else "false"}, '
                 f'{"true" if e.body.get("allow-preconfig") else "false"} }},')
    c.append("};")
    c.append("const size_t qmp_commands_count = G_N_ELEMENTS(qmp_commands);\n")
    for e in schema.events:
        h.append(event_proto(schema, e) + ";")
        c.append(event_proto(schema, e) + "\n{")
        members = schema.members(e)
        if members:
            c.append("    json_t *data = json_object();")
            for m, t, opt in members:
                v = c_name(m)
                guard = f"if (has_{v}) " if opt else ""
                if c_param(t).endswith("*"):
                    guard = f"if ({'has_' + v + ' && ' if opt else ''}{v}) "
                c.append(f'    {guard}json_object_set_new(data, "{m}", {json_builder(t, v)});')
            c.append(f'    monitor_emit_event(m, "{e.name}", data);\n}}\n')
        else:
            c.append(f'    monitor_emit_event(m, "{e.name}", NULL);\n}}\n')
    intro = json.dumps(introspection(schema), separators=(",", ":"))
    chunks = [intro[i:i + 90] for i in range(0, len(intro), 90)]
    c.append("const char qmp_schema_json[] =")
    c += ["    " + json.dumps(ch) for ch in chunks]
    c.append(";")
    h += ["", "#endif"]
    return "\n".join(h) + "\n", "\n".join(c) + "\n"


# ---- introspection (query-qmp-schema), QEMU's SchemaInfo shape ----

def introspection(schema):
    infos, seen = [], set()

    def use(t):
        key = type_key(t)
        if key in seen:
            return key
        seen.add(key)
        if isinstance(t, list):
            el = use(t[0])
            infos.append({"name": key, "meta-type": "array", "element-type": el})
        elif t in BUILTINS:
            infos.append({"name": t, "meta-type": "builtin", "json-type": BUILTINS[t][0]})
        elif schema.types[t].kind == "enum":
            vals = schema.types[t].body["data"]
            infos.append({"name": t, "meta-type": "enum", "values": vals,
                          "members": [{"name": v} for v in vals]})
        elif schema.types[t].kind == "union":
            u = schema.types[t]
            info = obj(t, schema.base_members(u))
            info["tag"] = u.body["discriminator"]
            info["variants"] = [{"case": case, "type": use(vt)}
                                for case, vt in u.body["data"].items()]
            infos.append(info)
        else:
            infos.append(obj(t, schema.members(schema.types[t])))
        return key

    def obj(name, members):
        ms = []
        for m, t, opt in members:
            d = {"name": m, "type": use(t)}
            if opt:
                d["default"] = None
            ms.append(d)
        return {"name": name, "meta-type": "object", "members": ms}

    def arg_type(e, what):
        if schema.args(e):
            return use(schema.args(e).name)
        members = schema.members(e)
        if not members:
            if "q_empty" not in seen:
                seen.add("q_empty")
                infos.append(obj("q_empty", []))
            return "q_empty"
        name = f"q_obj_{e.name}-{what}"
        infos.append(obj(name, members))
        return name

    for e in schema.commands:
        info = {"name": e.name, "meta-type": "command", "arg-type": arg_type(e, "arg"),
                "ret-type": use(e.body["returns"]) if "returns" in e.body else
                arg_type(Expr("struct", "", {}, [], e.where), "ret")}
        if e.body.get("allow-oob"):
            info["allow-oob"] = True
        infos.append(info)
    for e in schema.events:
        infos.append({"name": e.name, "meta-type": "event", "arg-type": arg_type(e, "arg")})
    return infos


# ---- docs/qmp.md ----

def describe_type(t):
    return f"array of {t[0]}" if isinstance(t, list) else t


def doc_text(e):
    """(prose lines, {member: description}, example lines) of a doc block."""
    prose, members, example = [], {}, []
    for line in e.doc:
        if line.startswith("@" + e.name + ":"):
            continue
        m = re.match(r"@([\w-]+): (.*)", line)
        if m:
            members[m.group(1)] = m.group(2)
        elif line.startswith(("->", "<-")) or (example and line.startswith(" ")):
            example.append(line)
        elif line.strip() or prose:
            prose.append(line)
    while prose and not prose[-1].strip():
        prose.pop()
    return prose, members, example


def gen_doc(schema):
    out = ["# QMP reference",
           "",
           "Generated by `scripts/qapi-gen.py --doc` from `qapi/*.json`: edit the schema, "
           "not this file.  `ninja -C BUILD monitor/qmp.md` regenerates it; copy that to "
           "`docs/qmp.md` (the unit test `qmp` fails while the two differ).",
           ""]
    for title, lines in schema.sections:
        out += [f"## {title}", ""] + lines + [""]
    for title, exprs in (("Commands", schema.commands), ("Events", schema.events)):
        out += [f"## {title}", ""]
        for e in sorted(exprs, key=lambda x: x.name):
            prose, mdoc, example = doc_text(e)
            out += [f"### `{e.name}`", ""]
            if prose:
                out += [" ".join(l.strip() for l in prose), ""]
            members = schema.members(e)
            if schema.args(e):
                out += [f"Arguments: the members of `{schema.args(e).name}` (see Types).", ""]
            if members:
                out += ["| argument | type | |" if e.kind == "command" else
                        "| data member | type | |", "|---|---|---|"]
                for m, t, opt in members:
                    desc = mdoc.get(m, "")
                    out.append(f"| `{m}` | {describe_type(t)}{' (optional)' if opt else ''}"
                               f" | {desc} |")
                out.append("")
            if e.kind == "command":
                rt = e.body.get("returns")
                out += [f"Returns: {describe_type(rt) if rt else 'nothing (`{}`)'}", ""]
                if e.body.get("allow-preconfig"):
                    pass
            if example:
                out += ["```"] + example + ["```", ""]
    out += ["## Types", ""]
    for name in sorted(schema.types):
        e = schema.types[name]
        if e.kind == "enum":
            vals = ", ".join(f"`{v}`" for v in e.body["data"])
            out += [f"- `{name}` (enum): {vals}"]
        elif e.kind == "union":
            ms = ", ".join(f"`{m}{'?' if opt else ''}`: {describe_type(t)}"
                           for m, t, opt in schema.base_members(e))
            cases = ", ".join(f"`{c}`: `{t}`" for c, t in e.body["data"].items())
            out += [f"- `{name}` (union on `{e.body['discriminator']}`): {{ {ms} }} and the "
                    f"members of {cases}"]
        else:
            ms = ", ".join(f"`{m}{'?' if opt else ''}`: {describe_type(t)}"
                           for m, t, opt in schema.members(e))
            out += [f"- `{name}`: {{ {ms} }}"]
    out.append("")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", "--outdir")
    ap.add_argument("--doc")
    ap.add_argument("schema", nargs="+")
    args = ap.parse_args()
    try:
        schema = Schema(args.schema)
    except SchemaError as e:
        print(f"qapi-gen: {e}", file=sys.stderr)
        return 1
    schema_types_struct.update(n for n, e in schema.types.items()
                               if e.kind in ("struct", "union"))
    if args.doc:
        with open(args.doc, "w", encoding="utf-8") as f:
            f.write(gen_doc(schema))
    if args.outdir:
        h, c = gen_c(schema)
        for name, text in (("qapi-generated.h", h), ("qapi-generated.c", c)):
            with open(os.path.join(args.outdir, name), "w", encoding="utf-8") as f:
                f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
