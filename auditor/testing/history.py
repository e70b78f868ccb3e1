"""Parameters and a seed in, a git repository with planted Twilio credentials and its Manifest out.

Why it exists: SPEC §4 counts can only be checked against a history whose answer is known, and the
benchmarks need 20k–100k-commit histories built in seconds. So the whole history is streamed into one
`git fast-import` process (inline blobs, commit marks), and the expected occurrences are not assumed
from the scenarios but derived while generating by applying SPEC §4 to the in-memory trees: each commit
records a (commit, path, pair) when the pair is in its file at path and in no parent's file at that path.
Scenarios (removal, re-adding, copies, renames, later edits, merged topic branches, evil merges,
never-merged branches, tag-only commits) and decoys only shape the content.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar


class File:
    """One immutable file version: lines joined by `nl` (or raw bytes for a binary decoy), detection cached."""

    __slots__ = ("_data", "found", "lines", "nl")

    def __init__(self, lines: list[str] | tuple[str, ...], nl: str = "\n", data: bytes | None = None) -> None:
        self.lines, self.nl, self._data, self.found = tuple(lines), nl, data, None

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = (self.nl.join(self.lines) + self.nl).encode()
        return self._data


BANNED_EXT = re.compile(r"(?:cs|x|p|s|r)?html5?~?|[aps]?cssc?~?|lock|mdx?~?|storyboard(?:c|er)?~?|xib", re.IGNORECASE)


def banned(path: str) -> bool:
    """SPEC §3 FilenameBanlist: the text after the last `.` of the basename, case-insensitive."""
    base = path.rsplit("/", 1)[-1]
    return "." in base and BANNED_EXT.fullmatch(base.rsplit(".", 1)[1]) is not None


def is_placeholder(h: str) -> bool:
    """SPEC §3: fewer than 6 distinct hex digits, or a repeated unit, is a placeholder, not a secret."""
    return len(set(h)) < 6 or any(h == h[:u] * (32 // u) for u in (1, 2, 4, 8, 16))


_HEX32 = re.compile(r"[0-9a-fA-F]{32}")  # lines holding one are never rewritten by ordinary edits


T0 = 1546300800  # 2019-01-01T00:00:00Z: commit i is dated T0 + 30 min × i, so dates are deterministic
SCENARIOS = ("plain", "removed", "readded", "copied", "renamed", "edited", "branch_merged", "branch_unmerged",
             "merge_resolution", "tag_only")
STEPS = {"plain": ["plant"], "removed": ["plant", "remove"], "readded": ["plant", "remove", "readd"],
         "copied": ["plant", "copy"], "renamed": ["plant", "rename"], "edited": ["plant", "edit", "edit"],
         "branch_merged": ["topic_plant"], "branch_unmerged": ["long_plant"], "merge_resolution": ["resolution"],
         "tag_only": ["tag_plant"]}
COST = {"topic_plant": 2, "resolution": 2}  # a topic commit and its merge; every other step is one commit
LONG_NAMES = ("feature/payments", "release/1.x", "experiment/sms-fallback", "feature/webhooks", "spike/voice")
_WB = rb"(?<![0-9A-Za-z_])"  # a whole word: no letter, digit or underscore on either side
_WE = rb"(?![0-9A-Za-z_])"
_SID_RE = re.compile(_WB + rb"AC([0-9a-f]{32})" + _WE)
_EMPTY: frozenset[int] = frozenset()
__all__ = ["BANNED_EXT", "Decoy", "Manifest", "Planted", "banned", "generate", "is_placeholder", "main"]


@dataclass(frozen=True)
class Planted:
    """One expected occurrence (SPEC §4). `still_at_tip`: the pair is in some file of some ref tip (branches
    and tags, as secrets.jsonl reports it), whatever the path. `step` says which action introduced it."""

    client_id: str
    client_secret: str
    commit: str
    path: str
    line: int
    still_at_tip: bool
    scenario: str = ""
    step: str = ""
    ref: str = ""  # branch the commit was made on (topic and scratch refs are deleted afterwards)
    pair: int = 0


@dataclass(frozen=True)
class Decoy:
    """Content that must never be a finding; `client_id`/`client_secret`: the look-alikes written, if any."""

    kind: str
    path: str
    client_id: str | None = None
    client_secret: str | None = None


@dataclass(frozen=True)
class Manifest:
    """What a scan of `repo` must report: `commits` == `git rev-list --all | wc -l`, one Planted per occurrence."""

    repo: str
    commits: int
    planted: tuple[Planted, ...]
    decoys: tuple[Decoy, ...] = ()
    refs: dict[str, str] = field(default_factory=dict, hash=False)
    params: dict[str, object] = field(default_factory=dict, hash=False)

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """The distinct planted (client_id, client_secret), in pair order."""
        return tuple(dict.fromkeys((p.client_id, p.client_secret) for p in sorted(self.planted, key=lambda p: p.pair)))

    def occurrences(self) -> set[tuple[str, str, str, str]]:
        """(commit, path, client_id, client_secret) of every expected occurrence, for set comparisons."""
        return {(p.commit, p.path, p.client_id, p.client_secret) for p in self.planted}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        d = json.loads(text)
        return cls(repo=d["repo"], commits=d["commits"], planted=tuple(Planted(**p) for p in d["planted"]),
                   decoys=tuple(Decoy(**x) for x in d.get("decoys", ())), refs=d.get("refs", {}),
                   params=d.get("params", {}))


# no "token", "auth" or "secret" in filler: those words rank tokens (SPEC §3)
WORDS = ("account", "alpha", "batch", "billing", "buffer", "cache", "channel", "client", "cursor", "delta", "event",
         "export", "filter", "gateway", "handler", "index", "invoice", "job", "ledger", "limit", "loader", "mapper",
         "message", "metric", "notify", "order", "page", "parser", "queue", "record", "region", "report", "retry",
         "route", "schedule", "session", "shard", "signal", "status", "storage", "stream", "sync", "task", "tenant",
         "timer", "user", "vector", "window", "worker")
PKGS = ("core", "api", "billing", "notify", "users", "storage", "jobs", "utils")
AUTHORS = ("Ada Byron <ada@example.com>", "Grace Hopper <grace@example.org>", "Linus T <lt@example.net>",
           "Margaret H <mh@example.com>", "Ken T <ken@example.org>", "Barbara L <bl@example.net>")
# (directory, extension, weight): nested enough that no directory holds more than ~100 of 3,000 files, so
# tree objects (rewritten along every changed path) do not dwarf the blobs
LAYOUT = (("src/{p}", "py", 12), ("src/{p}/{q}", "py", 48), ("tests/{p}", "py", 8), ("docs/{q}", "md", 6),
          ("docs/api", "html", 2), ("web/static/{q}", "js", 8), ("web/static/css", "css", 3),
          ("web/templates", "html", 3), ("config/{p}", "yaml", 4), ("config/{p}", "json", 2), ("config", "cfg", 2),
          ("config", "toml", 1), ("scripts", "sh", 2), ("deploy", "env", 1))
TEMPLATES = {
    "py": ("    {a}_{b} = {n}", "def {a}_{b}(self, {a}):", "    return self.{a}.{b}({n})", "# {a} {b}, see #{n}"),
    "js": ("const {a}{B} = {n};", "function {a}{B}({b}) {{", "  return {a}.{b}({n});", "// {a} {b} ({n})"),
    "yaml": ("{a}_{b}: {n}", "  - {a}-{b}", "{a}:", "# {a} {b} {n}"),
    "json": ('  "{a}_{b}": {n},', '  "{a}": "{b}",', '  "{a}{B}": [{n}],', '  "{b}": null,'),
    "cfg": ("{a}_{b} = {n}", "[{a}]", "{b} = {a}", "; {a} {b} {n}"),
    "toml": ("{a}_{b} = {n}", "[{a}.{b}]", '{b} = "{a}"', "# {a} {n}"),
    "md": ("## {A} {b}", "The {a} {b} uses {n} items.", "- {a}: {b}", "See `{a}.{b}()` for details."),
    "html": ('<div class="{a}-{b}">{n}</div>', "<p>{A} {b}</p>", '<a href="/{a}/{b}">{n}</a>', "<!-- {a} {b} -->"),
    "css": (".{a}-{b} {{ margin: {n}px; }}", ".{a} {{ color: #{n}; }}", "/* {a} {b} */", "#{a} {{ width: {n}%; }}"),
    "sh": ('echo "{a} {b}"', "{a}_{b}={n}", "./{a}.sh --{b} {n}", "# {a} {b}"),
    "env": ("{AU}_{BU}={n}", "{AU}_{BU}={b}", "# {a} {b}", "{AU}={n}"),
    "txt": ("{A} {b} {n}", "{a} {b}", "- {a} {n}", "{A}: {b}"),
}
CAP = 3500  # bytes: above it, edits mostly delete lines, so files stay a few KB


class Content:
    """Deterministic text: paths, file versions, edits, and the textual forms a planted pair takes."""

    FORMS = ("py_assign", "env", "yaml", "py_client", "js", "json", "cfg", "url", "token_first_far", "crlf_cfg",
             "appid_near", "commented")
    FORM_EXT: ClassVar[dict[str, str]] = {"env": "env", "yaml": "yaml", "js": "js", "json": "json", "cfg": "cfg",
                                          "crlf_cfg": "cfg"}  # every other form is Python

    def __init__(self, rng: random.Random) -> None:
        self.r, self.used = rng, set()

    def word(self) -> str:
        return self.r.choice(WORDS)

    def hex32(self) -> str:
        while is_placeholder(h := f"{self.r.getrandbits(128):032x}"):
            pass
        return h

    @staticmethod
    def ext(path: str) -> str:
        base = path.rsplit("/", 1)[-1]
        return base.rsplit(".", 1)[1] if "." in base else ""

    def form_ext(self, form: str) -> str:
        return self.FORM_EXT.get(form, "py")

    def line(self, ext: str) -> str:
        r, a, b = self.r, self.r.choice(WORDS), self.r.choice(WORDS)
        t = TEMPLATES.get(ext, TEMPLATES["txt"])[r.randrange(4)]
        return t.format(a=a, b=b, n=r.randrange(1000), A=a.title(), B=b.title(), AU=a.upper(), BU=b.upper())

    def lines(self, ext: str, lo: int, hi: int) -> list[str]:
        return [self.line(ext) for _ in range(self.r.randint(lo, hi))]

    def initial(self, path: str) -> File:
        return File(self.lines(self.ext(path), 6, 70))

    def new_path(self, ext: str | None = None, top: str | None = None) -> str:
        """A path never used before in any branch, in a directory that suits its extension."""
        r = self.r
        rows = [x for x in LAYOUT if ext is None or x[1] == ext] or [("config", ext, 1)]
        while True:
            d, e, _ = r.choices(rows, weights=[w for *_, w in rows])[0]
            name = f"{'test_' if d.startswith('tests') else ''}{r.choice(WORDS)}_{r.randrange(100)}.{e}"
            p = f"{top or d.format(p=r.choice(PKGS), q=r.choice(WORDS[:16]))}/{name}"
            if p not in self.used:
                self.used.add(p)
                return p

    def md5_line(self, ext: str) -> str:
        h, w, n = f"{self.r.getrandbits(128):032x}", self.r.choice(WORDS), self.r.randrange(1000)
        forms = {"py": f'CACHE_{w.upper()}_{n} = "{h}"', "json": f'  "{w}-{n}.js": "{h}",'}
        return forms.get(ext, f"{h}  {w}_{n}.png")

    def edit(self, path: str, f: File, hashy: bool) -> File:
        """Append, replace, insert or delete lines; never touches a line holding a 32-hex string."""
        r, ext, lines = self.r, self.ext(path), list(f.lines) or [""]
        x = r.random()
        if hashy:
            lines.append(self.md5_line(ext))
        elif len(f.data) > CAP and x < 0.6:
            i = r.randrange(len(lines))
            j = i + r.randint(2, 8)
            lines[i:j] = [ln for ln in lines[i:j] if _HEX32.search(ln)]
        elif x < 0.45:
            lines.extend(self.lines(ext, 1, 4))
        elif x < 0.8 and not _HEX32.search(lines[i := r.randrange(len(lines))]):
            lines[i] = self.line(ext)
        else:
            lines.insert(r.randrange(len(lines) + 1), self.line(ext))
        return File(lines, f.nl)

    def insert_block(self, f: File, block: list[str]) -> File:
        i = self.r.randrange(len(f.lines) + 1)
        return File(f.lines[:i] + tuple(block) + f.lines[i:], f.nl)

    def block(self, form: str, sid: str, tok: str) -> tuple[str, list[str], str]:
        """(extension, lines, newline) of one textual form of a pair; the token's line names a keyword
        whenever a decoy 32-hex string is nearer to the SID (appid_near), so ranking picks the right token."""
        L = self.line
        blocks = {
            "py_assign": [f'TWILIO_ACCOUNT_SID = "{sid}"', f'TWILIO_AUTH_TOKEN = "{tok}"'],
            "env": [f"TWILIO_ACCOUNT_SID={sid}", f"TWILIO_AUTH_TOKEN={tok}"],
            "yaml": ["twilio:", f"  account_sid: {sid}", "  region: us1", "  edge: ashburn", f"  auth_token: {tok}"],
            "py_client": [f'    client = Client("{sid}", "{tok}")'],
            "js": [f"const accountSid = '{sid}';", L("js"), L("js"), L("js"), f"const authToken = '{tok}';"],
            "json": ['  "twilio": {', f'    "account_sid": "{sid}",', f'    "auth_token": "{tok}"', "  },"],
            "cfg": ["[twilio]", f"account = {sid}", f"token = {tok}"],
            "crlf_cfg": ["[sms]", f"twilio_sid = {sid}", "region = ie1", f"twilio_token = {tok}"],
            "url": [f'TWILIO_URL = "https://{sid}:{tok}@api.twilio.com/2010-04-01/Accounts/{sid}/Messages.json"'],
            "token_first_far": [f'auth_token = "{tok}"', *(L("py") for _ in range(20)), f'account_sid = "{sid}"'],
            "appid_near": [f'account_sid = "{sid}"', f'app_id = "{self.hex32()}"', 'region = "us1"',
                           f'auth_token = "{tok}"'],
            "commented": [f'# account_sid = "{sid}"', f'# auth_token = "{tok}"'],
        }
        return self.form_ext(form), blocks[form], "\r\n" if form == "crlf_cfg" else "\n"

    def message(self, verb: str | None, path: str) -> str:
        verb = verb or self.r.choice(("Update", "Fix", "Refactor", "Tidy", "Extend", "Document"))
        return f"{verb} {path.rsplit('/', 1)[-1]}"


def decoy_files(c: Content) -> list[tuple[str, File, Decoy]]:
    """Files that must yield no finding (SPEC §3); kind "md5" files hold unrelated 32-hex strings and grow."""
    sid, tok = (lambda: "AC" + c.hex32()), c.hex32
    s1, s2, s3, s4, s5, s6 = (sid() for _ in range(6))
    t1, t2, t3, t4 = (tok() for _ in range(4))
    weak = "".join(c.r.choice("abcde") for _ in range(32))  # fewer than 6 distinct digits
    ph_sid, ph_tok = "AC" + "0123456789abcdef" * 2, "abcdef0123456789" * 2  # a repeated unit
    longer, upper = s4 + c.hex32()[:2], "AC" + s5[2:].upper()
    rows = (("sid_alone", "py", [f'ACCOUNT_SID = "{s1}"  # the token comes from the vault'], s1, None),
            ("token_alone", "yaml", [f"auth_token: {t1}"], None, t1),
            ("placeholder_pair", "cfg", [f"account_sid = {ph_sid}", f"auth_token = {ph_tok}"], ph_sid, ph_tok),
            ("low_entropy_token", "py", [f'account_sid = "{s2}"', f'auth_token = "{weak}"'], s2, weak),
            ("token_equals_sid", "py", [f'account_sid = "{s3}"', f'auth_token = "{s3[2:]}"'], s3, s3[2:]),
            ("sid_in_longer_run", "py", [f'ref = "{longer}"', f'auth_token = "{t2}"'], longer, t2),
            ("uppercase_sid", "py", [f'account_sid = "{upper}"', f'auth_token = "{t3}"'], upper, t3),
            ("template", "py", ['account_sid = "AC' + "X" * 32 + '"', 'auth_token = "{{ auth_token }}"',
                                'fallback = "your_auth_token"'], None, None))
    out = []
    for kind, ext, lines, s, t in rows:
        p = c.new_path(ext=ext)
        out.append((p, File([*c.lines(ext, 1, 4), *lines, *c.lines(ext, 0, 4)]), Decoy(kind, p, s, t)))
    for ext in ("md", "html", "lock"):  # a real-looking pair in a banned file type
        s, t = sid(), tok()
        p = c.new_path(ext=ext) if ext != "lock" else "yarn.lock"
        f = File([*c.lines(ext, 2, 6), f"account_sid: {s}", f"auth_token: {t}"])
        out.append((p, f, Decoy(f"banned_{ext}", p, s, t)))
    data = b"\x00\x01SQLite format 3\x00" + f'account_sid = "{s6}"\nauth_token = "{t4}"\n'.encode()
    out.append(("assets/cache.bin", File([], data=data), Decoy("binary", "assets/cache.bin", s6, t4)))
    for p in ("assets/checksums.txt", "src/core/cache_keys.py", "web/static/asset-manifest.json"):
        out.append((p, File([c.md5_line(c.ext(p)) for _ in range(c.r.randint(5, 30))]), Decoy("md5", p)))
    c.used.update(p for p, _, _ in out)
    return out


class _Branch:
    """A line of commits being built: its ref, its tree (path → File) and what it changed since its fork."""

    def __init__(self, ref: str, name: str, tree: dict[str, File], base: int | None) -> None:
        self.ref, self.name, self.tree, self.base = ref, name, tree, base  # base: mark of the fork (`from`)
        self.tip, self.commits, self.overlay, self.files = 0, 0, {}, []  # files: paths this branch edits
        self.remaining, self.evil, self.merged, self.dir = 0, None, False, ""
        self.merge, self.create_due, self.merge_due, self.created = False, 0, 0, False


class _Gen:
    """Plans the pairs' scenarios, then emits commits one by one so that exactly `commits` are made."""

    def __init__(self, *, commits: int, files: int, pairs: int, seed: int, branches: int, tags: int,
                 decoys: bool) -> None:
        self.rng = r = random.Random(seed)
        self.c = Content(r)
        self.N, self.nfiles, self.decoys_on, self.count, self.out = commits, files, decoys, 0, None
        self.pool: list[str] = []  # main's editable paths, with their index in pos, for O(1) random picks
        self.pos: dict[str, int] = {}
        self.protected, self.hashy, self.reserved, self.static = set(), set(), set(), set()
        self.main = _Branch("refs/heads/main", "main", {}, None)
        self.topic: _Branch | None = None
        self.long = [_Branch(f"refs/heads/{n}", n, {}, None)
                     for n in (LONG_NAMES[j % 5] + ("" if j < 5 else f"-{j}") for j in range(branches))]
        for j, b in enumerate(self.long):
            b.merge, b.dir = j < branches - 1, "services/" + b.name.replace("/", "-").replace(".", "")
            # fork before the first plant, so a removed pair is not left behind at a branch tip by chance
            b.create_due = r.randint(1, max(1, commits // 25))
            b.merge_due = r.randint(commits * 3 // 5, commits * 17 // 20)
        self.pairs: list[tuple[str, str]] = []
        while len(self.pairs) < pairs:
            sid, tok = "AC" + self.c.hex32(), self.c.hex32()
            if tok != sid[2:] and (sid, tok) not in self.pairs:
                self.pairs.append((sid, tok))
        self.sid_index = {s[2:].encode(): i for i, (s, _) in enumerate(self.pairs)}
        self.tok_re = [re.compile(_WB + t.encode() + _WE) for _, t in self.pairs]
        forms = [f for f in Content.FORMS if decoys or f != "appid_near"]
        r.shuffle(forms)
        self.scen, self.form, self.steps, self.heap = [], [], [], []
        for i in range(pairs):
            s = SCENARIOS[i] if i < len(SCENARIOS) else r.choice(SCENARIOS)
            s = "plain" if (s == "branch_unmerged" and not branches) or (s == "tag_only" and not tags) else s
            gap = (max(1, commits // 60), max(2, commits // 10))
            self.scen.append(s)
            self.form.append(forms[i % len(forms)])
            self.steps.append([(k, r.randint(*gap)) for k in STEPS[s]])
            heapq.heappush(self.heap, (commits // 20 + i * commits // (2 * max(pairs, 1)) + r.randrange(3), i))
        self.loc: dict[int, str] = {}
        self.fresh, self.saved, self.block = {}, {}, {}
        self.tag_at = [(j + 1) * commits // (tags + 1) for j in range(tags)]
        self.tip_trees: list[dict[str, File]] = []
        self.occ: list[tuple[int, str, int, int, str, str]] = []
        self.decoy_list: list[Decoy] = []
        self.cur, self.tags_made = "", 0

    def needed(self) -> int:
        """Commits still owed to the plan: pending steps, the open topic's merge, long branches' commits."""
        n = sum(COST.get(k, 1) for st in self.steps for k, _ in st) + (1 if self.topic else 0)
        pending_long = any(k == "long_plant" for st in self.steps for k, _ in st)
        for b in self.long:
            n += (1 + (b.commits == 0)) if b.merge and not b.merged else (b.commits == 0 and not pending_long)
        return n

    # --- emitting --------------------------------------------------------------------------------------
    def found(self, path: str, f: File) -> frozenset[int]:
        """Indexes of the planted pairs SPEC §4 detects in this file version (whole words, scanned type)."""
        if banned(path):
            return _EMPTY
        if f.found is None:
            d = f.data
            f.found = _EMPTY if b"AC" not in d or b"\0" in d[:8000] else frozenset(
                i for h in _SID_RE.findall(d) if (i := self.sid_index.get(h)) is not None and self.tok_re[i].search(d))
        return f.found

    def commit(self, br: _Branch, ops: list[tuple], msg: str, merge: _Branch | None = None, step: str = "") -> None:
        """Emit one commit of `ops` (M path file / D path / R old new / C old new) and record what it introduces."""
        self.count += 1
        mark, tree, new = self.count, br.tree, {}
        for op in ops:  # the new state of every path this commit touches (None: deleted)
            if op[0] == "M":
                new[op[1]] = op[2]
            else:
                if op[0] in "RC":
                    new[op[2]] = new[op[1]] if op[1] in new else tree[op[1]]
                if op[0] in "RD":
                    new[op[1]] = None
        gone = {tree[o].data for o, f in new.items() if f is None and o in tree}
        for p, f in new.items():  # SPEC §4; a pure rename (same blob deleted at another path) adds nothing
            fs = self.found(p, f) if f is not None and not (gone and f.data in gone) else _EMPTY
            for pf in (tree.get(p), merge.tree.get(p) if merge else None):
                fs = fs - self.found(p, pf) if fs and pf is not None else fs
            for i in sorted(fs):
                m = re.search(_WB + self.pairs[i][0].encode() + _WE, f.data)
                self.occ.append((mark, p, i, f.data.count(b"\n", 0, m.start()) + 1, br.name, step or self.cur))
        who, ts, m = self.rng.choice(AUTHORS).encode(), T0 + mark * 1800, msg.encode()
        parts = [b"commit %s\nmark :%d\nauthor %s %d +0000\ncommitter %s %d +0000\ndata %d\n%s\n"
                 % (br.ref.encode(), mark, who, ts, who, ts, len(m), m)]
        if br.base is not None:
            parts.append(b"from :%d\n" % br.base)
            br.base = None
        if merge is not None:
            parts.append(b"merge :%d\n" % merge.tip)
        for op in ops:
            if op[0] == "M":
                parts.append(b"M 100644 inline %s\ndata %d\n%s\n" % (op[1].encode(), len(op[2].data), op[2].data))
            else:
                parts.append(" ".join(op).encode() + b"\n")
        self.out.write(b"".join(parts) + b"\n")
        for p, f in new.items():
            if f is None:
                tree.pop(p, None)
            else:
                tree[p] = f
            if br is self.main and f is None and p in self.pos:
                last = self.pool.pop()
                if last != p:
                    self.pool[self.pos[p]] = last
                    self.pos[last] = self.pos[p]
                del self.pos[p]
            elif br is self.main and f is not None and p not in self.pos and p not in self.static:
                self.pos[p] = len(self.pool)
                self.pool.append(p)
            elif br is not self.main:
                br.overlay[p] = f
        br.tip, br.commits = mark, br.commits + 1

    def tag(self, name: str, mark: int, annotated: bool) -> None:
        if annotated:
            m = f"Release {name}".encode()
            self.out.write(b"tag %s\nfrom :%d\ntagger %s %d +0000\ndata %d\n%s\n"
                           % (name.encode(), mark, AUTHORS[0].encode(), T0 + mark * 1800, len(m), m))
        else:
            self.out.write(b"reset refs/tags/%s\nfrom :%d\n\n" % (name.encode(), mark))

    # --- the plan --------------------------------------------------------------------------------------
    def run(self) -> None:
        ops = []
        for _ in range(self.nfiles):
            p = self.c.new_path()
            ops.append(("M", p, self.c.initial(p)))
        if self.decoys_on:
            for p, f, d in decoy_files(self.c):
                ops.append(("M", p, f))
                (self.hashy if d.kind == "md5" else self.static).add(p)
                self.decoy_list.append(d)
        self.commit(self.main, ops, "Initial import")
        while self.count < self.N:
            self.step(self.N - self.count - self.needed())
            while self.tag_at and self.count >= self.tag_at[0]:
                j = self.tags_made = self.tags_made + 1
                self.tag(f"v0.{j}.0", self.main.tip, annotated=j % 2 == 1)
                self.tip_trees.append(dict(self.main.tree))
                self.tag_at.pop(0)
        assert self.needed() == 0 and self.topic is None, "plan not finished"

    def step(self, slack: int) -> None:
        """Make exactly one commit; owed work first when slack is gone, so the count ends exactly at N."""
        r, t, forced = self.rng, self.topic, slack <= 0
        for b in self.long:
            if not b.created and (self.count >= b.create_due or forced):
                self.create(b)
        if t and (t.remaining <= 0 or forced):
            return self.merge(t)
        for b in self.long:
            if b.merge and not b.merged and (forced or self.count >= b.merge_due):
                return self.long_commit(b) if b.commits == 0 else self.merge(b)
        if self.heap and (forced or self.heap[0][0] <= self.count):
            i = self.heap[0][1]
            if not (t and self.steps[i][0][0] in COST):
                heapq.heappop(self.heap)
                return self.do(i)
        if forced:
            return self.long_commit(next(b for b in self.long if b.commits == 0))
        if t and r.random() < 0.6:
            return self.topic_commit()
        if not t and slack >= 2 and r.random() < 0.04:
            self.open_topic(r.randint(1, 6))
            return self.topic_commit()
        for b in self.long:
            if b.created and not b.merged and r.random() < 0.02:
                return self.long_commit(b)
        self.ordinary()

    def do(self, i: int) -> None:
        """Run pair i's next scenario step (one commit) and schedule the one after it."""
        kind, _ = self.steps[i].pop(0)
        self.cur = kind  # labels the occurrences this step's commit introduces
        r, main = self.rng, self.main
        p = self.loc.get(i)
        if kind == "plant":
            q = self.pick(ext=self.c.form_ext(self.form[i]), free=True) if r.random() < 0.5 else None
            if q is None:
                p, f = self.plant_file(i)
            else:
                p, f = q, self.c.insert_block(main.tree[q], self.block_for(i))
                self.loc[i], self.fresh[i] = q, False
                self.protected.add(q)
            self.commit(main, [("M", p, f)], self.c.message("Configure Twilio in", p), step=kind)
        elif kind == "remove" and self.fresh.get(i):
            self.saved[i] = main.tree[p]
            self.commit(main, [("D", p)], self.c.message("Remove", p), step=kind)
        elif kind == "remove":
            f = main.tree[p]
            f2 = File([ln for ln in f.lines if self.pairs[i][0] not in ln and self.pairs[i][1] not in ln], f.nl)
            self.commit(main, [("M", p, f2)], self.c.message("Drop credentials from", p), step=kind)
        elif kind == "readd":
            f = self.saved.pop(i, None) or self.c.insert_block(main.tree[p], self.block[i])
            self.commit(main, [("M", p, f)], self.c.message("Restore settings in", p), step=kind)
        elif kind in ("copy", "rename"):
            q = self.c.new_path(ext=self.c.ext(p))
            self.protected.add(q)
            if kind == "rename":
                self.loc[i] = q
            self.commit(main, [(kind[0].upper(), p, q)], self.c.message(kind.title(), p), step=kind)
        elif kind == "edit":
            self.commit(main, [("M", p, self.c.edit(p, main.tree[p], False))], self.c.message("Tweak", p), step=kind)
        elif kind == "topic_plant":
            self.open_topic(r.randint(1, 4))
            self.topic_commit(plant=i)
        elif kind == "resolution":
            self.open_topic(r.randint(1, 3), evil=i)
            self.topic_commit()
        elif kind == "long_plant":
            b = next(b for b in self.long if not b.merge)
            if not b.created:
                self.create(b)
            self.long_commit(b, plant=i)
        elif kind == "tag_plant":
            s = _Branch("refs/heads/_synth/scratch", f"archive/{self.c.word()}-{i}", dict(main.tree), main.tip)
            p, f = self.plant_file(i)
            self.commit(s, [("M", p, f)], self.c.message("Experiment with", p), step=kind)
            self.tag(s.name, s.tip, annotated=True)
            self.tip_trees.append(s.tree)
        self.cur = ""
        if self.steps[i]:
            heapq.heappush(self.heap, (self.count + self.steps[i][0][1], i))

    # --- helpers ---------------------------------------------------------------------------------------
    def block_for(self, i: int) -> list[str]:
        self.block[i] = self.c.block(self.form[i], *self.pairs[i])[1]
        return self.block[i]

    def plant_file(self, i: int, top: str | None = None) -> tuple[str, File]:
        """A new file holding pair i (the only place its path is decided), marked protected."""
        ext, lines, nl = self.c.block(self.form[i], *self.pairs[i])
        p = self.c.new_path(ext=ext, top=top)
        self.loc[i], self.fresh[i], self.block[i] = p, True, lines
        self.protected.add(p)
        return p, File(self.c.lines(ext, 0, 5) + lines + self.c.lines(ext, 0, 8), nl)

    def pick(self, ext: str | None = None, free: bool = False) -> str | None:
        """A random main path that no open topic reserved; `free`: also not protected, hashy or static."""
        for _ in range(40 if ext else 20):
            p = self.pool[self.rng.randrange(len(self.pool))] if self.pool else None
            if p is None or p in self.reserved or (free and (p in self.protected or p in self.hashy)):
                continue
            if ext is None or self.c.ext(p) == ext:
                return p
        return None

    def ordinary(self) -> None:
        r, tree, ops, touched = self.rng, self.main.tree, [], set()
        x, n = r.random(), len(self.pool)
        if x < 0.03 and n < self.nfiles * 1.1 or not self.pool:
            p = self.c.new_path()
            ops.append(("M", p, self.c.initial(p)))
            touched.add(p)
        elif x < 0.07 and (p := self.pick(free=True)) is not None:
            if x < 0.05 and n > self.nfiles * 0.9:
                ops.append(("D", p))
            else:
                q = self.c.new_path(ext=self.c.ext(p))
                ops.append(("R", p, q))
                touched.add(q)
            touched.add(p)
        for _ in range(1 + (r.random() < 0.35) + (r.random() < 0.1)):
            p = self.pick()
            if p is not None and p not in touched:
                touched.add(p)
                ops.append(("M", p, self.c.edit(p, tree[p], p in self.hashy)))
        if not ops:  # every path reserved by the open topic: add a file instead
            p = self.c.new_path()
            ops.append(("M", p, self.c.initial(p)))
        self.commit(self.main, ops, self.c.message(None, ops[0][1]))

    def create(self, b: _Branch) -> None:
        b.tree, b.base, b.created = dict(self.main.tree), self.main.tip, True

    def open_topic(self, k: int, evil: int | None = None) -> None:
        t = _Branch("refs/heads/_synth/topic", f"topic/{self.c.word()}-{self.count}", dict(self.main.tree),
                    self.main.tip)
        t.remaining, t.evil = k, evil
        for _ in range(self.rng.randint(1, 3)):
            p = self.pick(free=True)
            if p is not None and p not in t.files:
                t.files.append(p)
                self.reserved.add(p)
        self.topic = t

    def topic_commit(self, plant: int | None = None) -> None:
        self.branch_commit(self.topic, plant, None)
        self.topic.remaining -= 1

    def long_commit(self, b: _Branch, plant: int | None = None) -> None:
        self.branch_commit(b, plant, f"{b.dir}/{self.rng.choice(PKGS)}")

    def branch_commit(self, b: _Branch, plant: int | None, top: str | None) -> None:
        """Commit on a side branch: edits only files it owns (reserved or its own), so merges never conflict."""
        r, edit = self.rng, False
        if plant is not None:
            p, f = self.plant_file(plant, top=top)
        elif not b.files or r.random() < 0.3:
            p = self.c.new_path(ext=r.choice(("py", "js", "yaml")), top=top)
            f = self.c.initial(p)
        else:
            p, edit = r.choice(b.files), True
            f = self.c.edit(p, b.tree[p], False)
        if p not in b.files:
            b.files.append(p)
        self.commit(b, [("M", p, f)], self.c.message("Update" if edit else "Add", p))

    def merge(self, b: _Branch) -> None:
        """Merge side branch b into main (no fast-forward); an evil merge also writes a pair no parent had."""
        ops = [("M", p, f) for p, f in b.overlay.items()]
        if b.evil is not None:
            ops.append(("M", *self.plant_file(b.evil)))
        step = "resolution" if b.evil is not None else ""
        self.commit(self.main, ops, f"Merge branch '{b.name}'", merge=b, step=step)
        if b is self.topic:
            self.reserved.difference_update(b.files)
            self.topic = None
        else:
            b.merged = True


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def generate(path: Path, *, commits: int = 1000, files: int = 300, pairs: int = 10, seed: int = 0,
             branches: int = 3, tags: int = 2, decoys: bool = True, bare: bool = False) -> Manifest:
    """Create the repository at `path` (absent or an empty directory) and return its Manifest."""
    path = Path(path)
    if commits < 1 or min(files, pairs, branches, tags) < 0:
        raise ValueError("commits must be at least 1; files, pairs, branches and tags at least 0")
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path} exists and is not an empty directory")
    gen = _Gen(commits=commits, files=max(files, 1), pairs=pairs, seed=seed, branches=branches, tags=tags,
               decoys=decoys)
    if commits < 1 + gen.needed():
        raise ValueError(f"commits={commits} is too few for pairs={pairs}, branches={branches}: "
                         f"need at least {1 + gen.needed()}")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main", *(["--bare"] if bare else []), str(path)],
                   check=True)
    with tempfile.TemporaryDirectory() as td:
        marks, err = Path(td) / "marks", Path(td) / "stderr"
        with open(err, "wb") as errf:
            proc = subprocess.Popen(["git", "-C", str(path), "fast-import", "--quiet", "--done",
                                     f"--export-marks={marks}", "--active-branches=64"],
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errf, bufsize=1 << 20)
            try:
                gen.out = proc.stdin
                proc.stdin.write(b"feature done\n")  # without the final "done", fast-import fails: no silent half
                gen.run()
                proc.stdin.write(b"done\n")
            except BrokenPipeError:
                pass  # fast-import died: its stderr says why
            except BaseException:
                proc.kill()
                raise
            finally:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
            if proc.wait() != 0:
                raise RuntimeError(f"git fast-import failed: {err.read_text(errors='replace')[-2000:]}")
        sha = {int(k[1:]): v for k, v in (ln.split() for ln in marks.read_text().splitlines())}
    for ref in _git(path, "for-each-ref", "--format=%(refname)", "refs/heads/_synth").split():
        _git(path, "update-ref", "-d", ref)
    if not bare:
        _git(path, "reset", "--quiet", "--hard")
    n = int(_git(path, "rev-list", "--all", "--count"))
    if n != commits:
        raise RuntimeError(f"made {n} commits instead of {commits}")
    at_tip: set[int] = set()
    for tree in [gen.main.tree, *(b.tree for b in gen.long), *gen.tip_trees]:
        for p, f in tree.items():
            at_tip |= gen.found(p, f)
    planted = tuple(Planted(client_id=gen.pairs[i][0], client_secret=gen.pairs[i][1], commit=sha[mark], path=p,
                            line=line, still_at_tip=i in at_tip, scenario=gen.scen[i], step=step, ref=ref, pair=i)
                    for mark, p, i, line, ref, step in gen.occ)
    refs = dict(ln.split(" ", 1)[::-1] for ln in _git(path, "for-each-ref", "--format=%(objectname) %(refname)")
                .splitlines())
    params = {"commits": commits, "files": files, "pairs": pairs, "seed": seed, "branches": branches,
              "tags": tags, "decoys": decoys, "bare": bare}
    return Manifest(repo=str(path.resolve()), commits=n, planted=planted, decoys=tuple(gen.decoy_list), refs=refs,
                    params=params)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m auditor.testing.history",
                                 description="Build a synthetic git history with planted Twilio credentials.")
    ap.add_argument("path", type=Path)
    for name, default in (("commits", 1000), ("files", 300), ("pairs", 10), ("seed", 0), ("branches", 3), ("tags", 2)):
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--no-decoys", action="store_true")
    ap.add_argument("--bare", action="store_true")
    ap.add_argument("--manifest", help="where to write the manifest JSON ('-': stdout); "
                                       "default PATH/../<name>.manifest.json")
    a = ap.parse_args(argv)
    start = time.monotonic()
    try:
        m = generate(a.path, commits=a.commits, files=a.files, pairs=a.pairs, seed=a.seed, branches=a.branches,
                     tags=a.tags, decoys=not a.no_decoys, bare=a.bare)
    except (ValueError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.manifest == "-":
        print(m.to_json())
        return 0
    out = Path(a.manifest) if a.manifest else a.path.parent / f"{a.path.resolve().name}.manifest.json"
    out.write_text(m.to_json() + "\n")
    print(f"{a.path}: {m.commits} commits, {len(m.planted)} planted occurrences of {len(m.pairs)} pairs, "
          f"{len(m.decoys)} decoys in {time.monotonic() - start:.1f}s; manifest {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
