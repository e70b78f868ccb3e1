"""A scan's store (audit.sqlite) or its in-memory results in; typed pandas frames out, with secret lifecycles.

Frames, each built once with declared dtypes (times are ``datetime64[s, UTC]``: git has no finer clock):
``findings`` (one row per occurrence, joined with its validity check, the commit time, and where that exposure
ended), ``secrets`` (one row per unique secret: first/last introduction, exposure, presence at ref tips),
``commits``, ``repos``, ``tips``, ``removals`` and ``detectors``. Nothing here holds a plaintext token: the store
keeps secrets redacted, and an in-memory frame is redacted by the caller unless the user asked otherwise.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from auditor.errors import UsageError
from auditor.models import PRESENCE, REACH, Finding, Validity, presence, short_repo
from auditor.outdir import OutDir

TIME = "datetime64[s, UTC]"
FINDING_DTYPES = {
    "detector": "string", "repo": "string", "commit": "string", "path": "string", "line": "int64",
    "client_id": "string", "client_secret": "string", "secret_sha256": "string", "validity": "string",
    "scope": "string", "account_status": "string", "account_type": "string", "subaccount": "boolean",
    "region": "string", "author_email": "string", "author_name": "string", "author_time": TIME, "commit_time": TIME,
    "commit_message": "string", "blob": "string",
}
# Added to findings here: the kind of ref that reaches the commit, where the file sits, the first descendant commit
# whose blob at the same path no longer holds the secret (end of that exposure), and when its validity was checked
# (validity is only true as of then; NaT when never checked). ``commit_time`` (what rates per year count) is the
# finding's own, else the store's commits row (a store before schema 4), else the author time (an interrupted scan).
DERIVED_DTYPES = {"reach": "string", "extension": "string", "top_directory": "string",
                  "removed_commit": "string", "removed_time": TIME, "checked_at": TIME}
CHECK_DTYPES = {"secret_sha256": "string", "checked_at": TIME}  # when each secret's validity was last asked
COMMIT_DTYPES = {"repo": "string", "commit": "string", "commit_time": TIME, "reach": "string"}
REPO_DTYPES = {"repo": "string", "path": "string", "commits_scanned": "int64", "shallow": "bool", "scanned_at": TIME}
TIP_DTYPES = {"repo": "string", "secret_sha256": "string", "ref": "string", "path": "string"}
END_DTYPES = {"repo": "string", "commit": "string", "path": "string", "secret_sha256": "string",
              "removed_commit": "string", "removed_time": TIME}
REMOVAL_DTYPES = {"repo": "string", "detector": "string", "commit": "string", "path": "string",
                  "secret_sha256": "string", "commit_time": TIME}
DETECTOR_DTYPES = {"detector": "string", "name": "string", "reference_occurrences_per_million_commits": "Float64"}
NO_EXTENSION, ROOT = "(none)", "(root)"
# Small vocabularies as categoricals (what ``ScanFrames`` gives; files keep plain text): validity in the enum's order,
# presence ordered from the riskiest (a branch tip) to history only, detector over the scan's detectors.
VALIDITY = pd.CategoricalDtype([v.value for v in Validity])
SCOPE = pd.CategoricalDtype(["live", "test"])
PRESENCE_DTYPE = pd.CategoricalDtype(list(PRESENCE), ordered=True)
DURATION = "timedelta64[s]"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanFrames:
    """Everything the reporter knows about one scan directory (or one run), as frames."""

    findings: pd.DataFrame
    secrets: pd.DataFrame
    commits: pd.DataFrame
    repos: pd.DataFrame
    tips: pd.DataFrame
    removals: pd.DataFrame
    detectors: pd.DataFrame
    validated: bool  # validity was checked: "valid" rates are numbers, not null
    source: Path | None = None
    # what the scan covered and when validity was asked (``scan_meta``); also ``attrs["scan"]`` of the main frames
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def commits_scanned(self) -> int:
        return int(self.repos["commits_scanned"].sum())


def typed(rows: Iterable[Any], dtypes: Mapping[str, str]) -> pd.DataFrame:
    """Rows (tuples or dicts) → a frame with exactly ``dtypes``' columns and types; ISO 8601 text → UTC times."""
    frame = pd.DataFrame(list(rows), columns=list(dtypes))
    times = {c: pd.to_datetime(frame[c], utc=True, format="ISO8601") for c, t in dtypes.items() if t == TIME}
    return frame.assign(**times).astype(dict(dtypes))


def findings_frame(findings: Iterable[Finding]) -> pd.DataFrame:
    """In-memory findings (plaintext secrets: redact before writing) → a frame of FINDING_DTYPES."""
    return typed((asdict(f) | {"validity": f.validity.value} for f in findings), FINDING_DTYPES)


def detectors_frame(detectors: Iterable[Any]) -> pd.DataFrame:
    """Detector specs (or dicts with id/name/reference) → one row each."""
    rows = []
    for d in detectors:
        get = d.get if isinstance(d, Mapping) else lambda k, _d=d: getattr(_d, k, None)
        rows.append((get("id"), get("name"), get("reference_occurrences_per_million_commits")))
    return typed(rows, DETECTOR_DTYPES)


# -- reading a scan directory -------------------------------------------------------------------------------------
def _store_path(path: Path) -> Path:
    store = OutDir(path).store if path.is_dir() else path
    if not store.is_file():
        raise UsageError(f"{path}: no audit.sqlite here. Run `auditor scan REPO --out {path}` first, "
                         "then point this at that --out directory.")
    return store


_QUERIES = {
    "findings": """
        SELECT o.detector, o.repo, o.commit_id, o.path, o.line, o.client_id, o.secret_redacted, o.secret_sha256,
               COALESCE(c.validity, 'unchecked'), c.scope, c.account_status, c.account_type, c.subaccount, c.region,
               o.author_email, o.author_name, o.author_time, o.commit_time, o.commit_message, o.blob
        FROM occurrences o LEFT JOIN checks c ON c.secret_sha256 = o.secret_sha256""",
    "commits": "SELECT c.repo, c.commit_id, c.commit_time, COALESCE(r.reach, '" + REACH[0] + "') FROM commits c "
               "LEFT JOIN commit_reach r ON r.repo = c.repo AND r.commit_id = c.commit_id",
    "repos": "SELECT repo, path, commits_scanned, shallow, scanned_at FROM repos",
    "tips": "SELECT repo, secret_sha256, ref, path FROM tip_presence",
    "removals": "SELECT repo, detector, commit_id, path, secret_sha256, commit_time FROM removals",
    "ends": "SELECT repo, commit_id, path, secret_sha256, removed_commit, removed_time FROM exposure_ends",
    "checks": "SELECT secret_sha256, checked_at FROM checks",
}
_DTYPES = {"findings": FINDING_DTYPES, "commits": COMMIT_DTYPES, "repos": REPO_DTYPES, "tips": TIP_DTYPES,
           "removals": REMOVAL_DTYPES, "ends": END_DTYPES, "checks": CHECK_DTYPES}


def read_store(store: Path, repos: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """The store's tables as typed frames (read-only), restricted to ``repos`` when given."""
    try:
        with closing(sqlite3.connect(store.resolve().as_uri() + "?mode=ro", uri=True)) as db:
            have = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            # a store of an older auditor has no exposure_ends (its occurrences show no end until rescanned), its
            # checks no subaccount or region (until a scan opens the store, which adds them), and no commit_reach
            # (every commit counts as the project's)
            checks = {r[1] for r in db.execute("PRAGMA table_info(checks)")}
            newer = ", ".join(f"c.{c}" if c in checks else "NULL" for c in ("subaccount", "region"))
            queries = {name: sql.replace("c.subaccount, c.region", newer) for name, sql in _QUERIES.items()}
            occurrences = {r[1] for r in db.execute("PRAGMA table_info(occurrences)")}
            for column in ("author_name", "commit_time", "commit_message"):  # schema 4 (until a scan adds them)
                if column not in occurrences:
                    queries["findings"] = queries["findings"].replace(f"o.{column}", "NULL")
            if "commit_reach" not in have:
                queries["commits"] = f"SELECT repo, commit_id, commit_time, '{REACH[0]}' FROM commits"
            out = {name: typed(db.execute(sql).fetchall() if name != "ends" or "exposure_ends" in have else [],
                               _DTYPES[name]) for name, sql in queries.items()}
    except sqlite3.Error as e:
        if "no such table" in str(e):
            raise UsageError(f"{store}: not an auditor store ({e}). Pass the --out directory of a scan.") from None
        raise UsageError(f"{store}: cannot read the store ({e}); rerun the scan into a fresh --out "
                         "directory.") from None
    return out if repos is None else restrict(out, repos)


def restrict(tables: dict[str, pd.DataFrame], repos: Sequence[str]) -> dict[str, pd.DataFrame]:
    """The rows of ``repos`` only, in every table."""
    return {name: frame[frame["repo"].isin(list(repos))].reset_index(drop=True) if "repo" in frame else frame
            for name, frame in tables.items()}


def load(path: str | Path, *, repos: Sequence[str] | None = None) -> ScanFrames:
    """A scan's --out directory (or its audit.sqlite) → ScanFrames; summary.json, if there, says what was checked."""
    path = Path(path)
    store = _store_path(path)
    tables = read_store(store, repos)
    summary = OutDir(store.parent).read_summary()
    if summary.get("detectors"):
        detectors = detectors_frame({"id": k, **v} for k, v in summary["detectors"].items())
    else:
        from auditor.detectors import load_detectors  # the built-in ones: what a scan without --detectors used
        detectors = detectors_frame(load_detectors())
    validated = bool(summary.get("validated")) or bool((tables["findings"]["validity"] != "unchecked").any())
    about = {r.get("repo"): r for r in summary.get("repos", []) if isinstance(r, dict)}
    repos = tables["repos"]
    tables["repos"] = repos.assign(
        name=repos["repo"].map(lambda r: short_repo(str(r))).astype("string"),
        partial_clone=pd.array([about.get(r, {}).get("partial_clone") for r in repos["repo"]], dtype="boolean"),
        errors=pd.array([about.get(r, {}).get("errors") for r in repos["repo"]], dtype="Int64"))
    return assemble(**tables, detectors=detectors, validated=validated, source=store.parent,
                    meta=scan_meta(tables, summary, validated, store.parent))


def scan_meta(tables: Mapping[str, pd.DataFrame], summary: Mapping[str, Any], validated: bool,
              source: Path | None) -> dict[str, Any]:
    """What a reader of the frames must know to trust them: whether every object was read (shallow or partial
    clones, unreadable objects, skipped blobs), commits by the kind of ref that reaches them, and when validity was
    asked (it is true only as of then). Plain JSON values (times as ISO 8601 text): Parquet files keep it."""
    repos, checks = tables["repos"], tables.get("checks")
    shallow = [str(r) for r in repos.loc[repos["shallow"].astype(bool), "repo"]]
    partial = [str(r.get("repo")) for r in summary.get("repos", []) if isinstance(r, dict) and r.get("partial_clone")]
    errors = int(summary.get("error_count", len(summary.get("errors", []))) or 0)
    checked = checks["checked_at"].dropna() if checks is not None else pd.Series([], dtype=TIME)
    reach = tables["commits"]["reach"].fillna(REACH[0]).value_counts()
    return {"source": None if source is None else str(source), "validated": validated,
            "complete": not (shallow or partial or errors or summary.get("interrupted")),
            "interrupted": bool(summary.get("interrupted")), "shallow": shallow, "partial_clone": partial,
            "unreadable_objects": errors, "blobs_skipped": dict(summary.get("blobs_skipped") or {}),
            "commits_by_reach": {k: int(reach.get(k, 0)) for k in REACH},
            "checked_at_first": _iso(checked.min()), "checked_at_last": _iso(checked.max()),
            "scanned_at_last": _iso(repos["scanned_at"].max())}


def _iso(value: Any) -> str | None:
    """A time as ISO 8601 text (the metadata travels into Parquet files as JSON); None for none."""
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat().replace("+00:00", "Z")


# -- lifecycles ---------------------------------------------------------------------------------------------------
def _with_ends(findings: pd.DataFrame, ends: pd.DataFrame) -> pd.DataFrame:
    """Each occurrence's end, as the scan decided it from the commit graph (``exposure_ends``)."""
    keys = ["repo", "commit", "path", "secret_sha256"]
    got = findings.drop(columns=[c for c in ("removed_commit", "removed_time") if c in findings])
    got = got.merge(ends[[*keys, "removed_commit", "removed_time"]].drop_duplicates(keys), on=keys, how="left",
                    validate="many_to_one")
    return got.astype({"removed_commit": "string", "removed_time": TIME})


def _lookup(values: pd.Series, keys: pd.Series) -> pd.Series:
    """values[key] for each key (NaT where absent), as UTC times aligned with ``keys``."""
    if values.empty:
        return pd.Series(pd.NaT, index=keys.index, dtype=TIME)
    return pd.Series(values.astype(TIME).reindex(keys.astype(str)).array, index=keys.index).astype(TIME)


def secrets_frame(findings: pd.DataFrame, tips: pd.DataFrame, removals: pd.DataFrame,
                  repos: pd.DataFrame) -> pd.DataFrame:
    """One row per unique secret: first/last introduction, counts, validity, presence at ref tips, exposure.

    Exposure runs from the first introducing commit (committer time) to the last commit that removed the secret
    anywhere, or — for a secret still at some ref tip — to the scan (``exposure_ongoing``).
    """
    tip_refs = tips.groupby("secret_sha256")["ref"].agg(lambda r: sorted(set(r)))
    tip_scan = (tips.merge(repos[["repo", "scanned_at"]], on="repo").groupby("secret_sha256")["scanned_at"].max())
    last_removal = removals.groupby("secret_sha256")["commit_time"].max()
    ordered = findings.sort_values(["author_time", "commit_time", "commit", "path"], kind="stable")
    secrets = (ordered.groupby(["secret_sha256", "detector"], sort=False)  # a secret is (detector, pair): SPEC §4
               .agg(client_id=("client_id", "first"),
                    client_secret=("client_secret", "first"), validity=("validity", "first"),
                    scope=("scope", "first"), account_status=("account_status", "first"),
                    account_type=("account_type", "first"), subaccount=("subaccount", "first"),
                    region=("region", "first"),
                    first_commit=("commit", "first"), first_time=("author_time", "first"),
                    last_commit=("commit", "last"), last_time=("author_time", "last"),
                    introduced_time=("commit_time", "min"),
                    occurrences=("commit", "size"), commits=("commit", "nunique"), repos=("repo", "nunique"),
                    paths=("path", "nunique"))
               .reset_index())
    refs = [tip_refs.get(h, []) for h in secrets["secret_sha256"]]
    at_tip = pd.Series([bool(r) for r in refs], index=secrets.index, dtype="bool")
    removed = _lookup(last_removal, secrets["secret_sha256"]).where(~at_tip)
    end = removed.where(~at_tip, _lookup(tip_scan, secrets["secret_sha256"]))
    return secrets.assign(
        still_at_tip=at_tip,
        tip_refs=pd.Series(refs, index=secrets.index, dtype=object),
        presence=pd.Series([presence(r) for r in refs], index=secrets.index, dtype="string"),
        removed_time=removed.astype(TIME),
        exposure_ongoing=at_tip,
        exposure_days=((end - secrets["introduced_time"]).dt.total_seconds() / 86400).astype("Float64"),
        exposure=(end - secrets["introduced_time"]).astype(DURATION),  # the same span as a Timedelta
    ).astype({"occurrences": "int64", "commits": "int64", "repos": "int64", "paths": "int64"})


def _extension(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[1].lower() if "." in base else NO_EXTENSION  # SPEC §3: after the basename's last "."


def assemble(*, findings: pd.DataFrame, commits: pd.DataFrame, repos: pd.DataFrame, tips: pd.DataFrame,
             removals: pd.DataFrame, ends: pd.DataFrame, detectors: pd.DataFrame, validated: bool,
             source: Path | None = None, checks: pd.DataFrame | None = None,
             meta: dict[str, Any] | None = None) -> ScanFrames:
    """Typed tables → ScanFrames: findings gain commit time, extension, top directory, end of exposure and where
    their secret still is; validity, scope, presence and detector become categoricals."""
    times = commits.rename(columns={"commit_time": "_time"})
    findings = (findings.reset_index(drop=True)
                .merge(times, on=["repo", "commit"], how="left", validate="many_to_one"))
    paths = findings["path"].astype(str)
    findings = findings.assign(
        commit_time=findings["commit_time"].fillna(findings["_time"]).fillna(findings["author_time"]).astype(TIME),
        reach=findings["reach"].fillna(REACH[0]).astype("string"),
        extension=paths.map(_extension).astype("string"),
        top_directory=paths.map(lambda p: p.split("/", 1)[0] if "/" in p else ROOT).astype("string"),
    ).drop(columns="_time")
    checked = (checks if checks is not None else typed([], CHECK_DTYPES)).drop_duplicates("secret_sha256")
    findings = findings.assign(checked_at=_lookup(checked.set_index("secret_sha256")["checked_at"],
                                                  findings["secret_sha256"]))
    findings = _with_ends(findings, ends)[[*FINDING_DTYPES, *DERIVED_DTYPES]]
    known = set(detectors["detector"].dropna())
    extra = sorted(set(findings["detector"]) - known)  # found by a detector the summary did not name
    if extra:
        detectors = pd.concat([detectors, typed(((d, d, None) for d in extra), DETECTOR_DTYPES)], ignore_index=True)
    secrets = secrets_frame(findings, tips, removals, repos)
    findings = with_presence(findings, tips)
    kinds = {"validity": VALIDITY, "scope": SCOPE, "presence": PRESENCE_DTYPE,
             "detector": pd.CategoricalDtype(list(dict.fromkeys(detectors["detector"].dropna().astype(str))))}
    meta = dict(meta or {})
    findings, secrets = (frame.astype({c: t for c, t in kinds.items() if c in frame}) for frame in (findings, secrets))
    for frame in (findings, secrets, repos):
        frame.attrs["scan"] = meta
    return ScanFrames(findings=findings, secrets=secrets, commits=commits, repos=repos, tips=tips, removals=removals,
                      detectors=detectors, validated=validated, source=source, meta=meta)


def with_presence(findings: pd.DataFrame, tips: pd.DataFrame) -> pd.DataFrame:
    """Each finding with where its secret still is (``presence``, as in secrets) and whether this very occurrence's
    path still holds it at some ref tip (``at_tip``): what a "still exposed" filter needs without a merge."""
    refs = tips.groupby("secret_sha256")["ref"].agg(lambda r: sorted(set(r))).to_dict() if len(tips) else {}
    here = set(zip(tips["repo"], tips["secret_sha256"], tips["path"], strict=True))
    keys = zip(findings["repo"], findings["secret_sha256"], findings["path"], strict=True)
    return findings.assign(
        presence=pd.Series([presence(refs.get(h, [])) for h in findings["secret_sha256"]], index=findings.index,
                           dtype="string"),
        at_tip=pd.Series([k in here for k in keys], index=findings.index, dtype="bool"))


def exposures(findings: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """secret_sha256 → where it was introduced and when it stopped being present there (for secrets.jsonl)."""
    out: dict[str, list[dict[str, Any]]] = {}
    cols = ["repo", "path", "commit", "commit_time", "removed_commit", "removed_time"]
    for row in findings.sort_values(["commit_time", "commit", "path"])[["secret_sha256", *cols]].itertuples(
            index=False):
        out.setdefault(row.secret_sha256, []).append(
            {"repo": row.repo, "path": row.path, "introduced_commit": row.commit,
             "introduced_time": row.commit_time, "removed_commit": row.removed_commit,
             "removed_time": row.removed_time})
    return out
