"""Every descriptor Sen creates is close-on-exec (docs/security.md), checked in the source.

A grep-level audit, so that it stays true as code is added: each call that makes a file
descriptor must carry its CLOEXEC flag in the call, or in the few lines before it (a flags
variable), and the calls that cannot (pipe, accept, epoll_create, mkstemp, dup) must not
be used at all, except dup2 onto stdin/stdout/stderr, which must stay open across exec.
A line may opt out with a comment `cloexec-audit: <why>` on it or just above it.
"""
import os
import re

import pytest

SRC = os.environ.get("SEN_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
# Directories whose code runs in the sen and sen-img processes.
CODE_DIRS = ["accel", "block", "chardev", "hw", "migration", "monitor", "net", "os",
             "softmmu", "tools", "util"]

# call -> the token that must appear (None: the call is not allowed at all)
RULES = {
    "open": "O_CLOEXEC", "openat": "O_CLOEXEC", "open64": "O_CLOEXEC", "g_open": "O_CLOEXEC",
    "creat": None, "socket": "SOCK_CLOEXEC", "socketpair": "SOCK_CLOEXEC",
    "accept": None, "accept4": "SOCK_CLOEXEC", "pipe": None, "pipe2": "O_CLOEXEC",
    "eventfd": "EFD_CLOEXEC", "memfd_create": "MFD_CLOEXEC", "epoll_create": None,
    "epoll_create1": "EPOLL_CLOEXEC", "timerfd_create": "TFD_CLOEXEC",
    "signalfd": "SFD_CLOEXEC", "inotify_init": None, "inotify_init1": "IN_CLOEXEC",
    "mkstemp": None, "mkostemp": "O_CLOEXEC", "g_file_open_tmp": None, "dup": None,
    "dup2": "STD(IN|OUT|ERR)_FILENO", "dup3": "O_CLOEXEC", "fopen": None, "fdopen": None,
    "userfaultfd": "O_CLOEXEC", "perf_event_open": None,
}
CALL = re.compile(r"(?<![\w.>])(" + "|".join(sorted(RULES, key=len, reverse=True)) +
                  r")\s*\(")
FOPEN_MODE = re.compile(r'fopen\s*\([^;]*?,\s*"([^"]*)"')
LOOKBACK = 12  # lines before the call in which a flags variable may get its CLOEXEC


def strip_comments_and_strings(text):
    """Blanks comments and string contents (keeping newlines) so calls in them don't count."""
    def blank(m):
        s = m.group(0)
        if s.startswith('"'):
            return '"' + re.sub(r"[^\n]", " ", s[1:-1]) + '"'
        return re.sub(r"[^\n]", " ", s)
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"', blank, text, flags=re.S)


def call_args(text, start):
    """The text from the '(' at start to its matching ')'."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
    return text[start:]


def audit(path, text):
    problems = []
    raw_lines = text.splitlines()
    code = strip_comments_and_strings(text)
    for m in CALL.finditer(code):
        name = m.group(1)
        line_no = code.count("\n", 0, m.start()) + 1
        # A declaration or definition of that name (a driver's .open member is skipped by
        # the lookbehind), not a call: "bool open(" never occurs in C we write.
        around = "\n".join(raw_lines[max(0, line_no - 2):line_no])
        if "cloexec-audit:" in around:
            continue
        args = call_args(code, m.end() - 1)
        rule = RULES[name]
        if name == "fopen":
            mode = FOPEN_MODE.search(text[m.start():m.start() + 400])
            if mode and "e" in mode.group(1):
                continue
            problems.append(f"{path}:{line_no}: fopen without the 'e' (O_CLOEXEC) mode flag")
            continue
        if rule is None:
            problems.append(f"{path}:{line_no}: {name}() makes a descriptor without "
                            f"close-on-exec; use its CLOEXEC variant")
            continue
        if re.search(rule, args):
            continue
        before = "\n".join(code.splitlines()[max(0, line_no - LOOKBACK):line_no])
        if name not in ("dup2",) and re.search(rule, before):
            continue  # a flags variable set just above
        problems.append(f"{path}:{line_no}: {name}() without {rule}")
    return problems


def source_files():
    for d in CODE_DIRS:
        for root, _, files in os.walk(os.path.join(SRC, d)):
            for f in files:
                if f.endswith(".c"):
                    yield os.path.join(root, f)


def test_audit_catches_violations():
    """The audit must be able to fail: each kind of mistake is reported."""
    bad = '''
        int a = open(path, O_RDWR);
        int b = socket(AF_UNIX, SOCK_STREAM, 0);
        pipe(fds);
        FILE *f = fopen(path, "w");
        int c = eventfd(0, EFD_NONBLOCK);
        dup2(fd, 7);
        int d = accept(fd, NULL, NULL);
    '''
    problems = audit("sample.c", bad)
    assert len(problems) == 7, problems
    good = '''
        int flags = O_RDWR | O_CLOEXEC;
        int a = open(path, flags);
        int b = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        pipe2(fds, O_CLOEXEC);
        FILE *f = fopen(path, "we");
        dup2(null, STDERR_FILENO);
        /* pipe(fds) in a comment */ const char *s = "socket(";
        if (drv->open(bs)) {}
    '''
    assert audit("sample.c", good) == []


def test_every_descriptor_is_close_on_exec():
    files = list(source_files())
    if not files:
        pytest.skip(f"no sources under {SRC}")
    problems = []
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            problems += audit(os.path.relpath(path, SRC), f.read())
    assert not problems, "\n".join(problems)
