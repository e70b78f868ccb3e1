-- The auditor store: one SQLite file per --out directory (audit.sqlite, mode 0600).
-- It never holds a plaintext token: secrets are keyed by secret_sha256 and kept redacted; a rerun re-reads the
-- few matched blobs from the repository to recover what it needs to show or check.

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,  -- 'schema_version'
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS scanned (
    ruleset TEXT NOT NULL,  -- hash of the detector set (and options) that scanned them; another set rescans them
    oids    BLOB NOT NULL,  -- raw 20-byte ids of the blobs one batch scanned, concatenated (content-addressed, so
                            -- valid for every repository; a row per batch keeps 100k-blob scans to a few inserts)
    matched BLOB NOT NULL   -- those of them that yielded candidates: re-read on every run, never skipped
);

CREATE TABLE IF NOT EXISTS checks (
    secret_sha256  TEXT PRIMARY KEY,  -- sha256("<client_id>:<client_secret>")
    detector       TEXT NOT NULL,     -- detector id
    client_id      TEXT NOT NULL,     -- the public half (e.g. a Twilio Account SID)
    validity       TEXT NOT NULL,     -- valid / invalid / failed_to_check
    scope          TEXT,              -- live / test, for valid secrets
    account_status TEXT,              -- provider's account status (active / suspended / closed)
    account_type   TEXT,              -- provider's account type (Trial / Full)
    checked_at     TEXT NOT NULL,     -- ISO 8601 UTC; older than --recheck-after is asked again
    -- Added in schema 3 (an older store gains them empty, so none of its checks is reused: their base is unknown).
    base           TEXT,              -- the API base asked first; a check is reused only by a run asking the same
    region         TEXT,              -- the provider's region whose host gave the answer (us1, ie1, …)
    fallbacks      TEXT,              -- NULL: the base's answer stood alone; else the base refused the pair as it
                                      -- refuses another region's credential and these were asked next
                                      -- ("ie1=URL au1=URL"; '' when no region was listed): reused only by a run
                                      -- that lists the same
    subaccount     INTEGER            -- 1: the account has a parent account; 0: a main account; NULL: not said
);

CREATE TABLE IF NOT EXISTS repos (
    repo            TEXT PRIMARY KEY,  -- the REPO argument as given (path or URL)
    path            TEXT NOT NULL,     -- the git directory scanned (a mirror for URLs)
    commits_scanned INTEGER NOT NULL,  -- distinct commits of `git rev-list --all`
    shallow         INTEGER NOT NULL,  -- 1 for a shallow clone: history before its boundary is not seen
    scanned_at      TEXT NOT NULL      -- ISO 8601 UTC of the last complete scan
);

CREATE TABLE IF NOT EXISTS commits (
    repo        TEXT NOT NULL,     -- repos.repo
    commit_id   TEXT NOT NULL,     -- hex id
    commit_time TEXT NOT NULL,     -- committer time, ISO 8601 UTC: denominators of rates per year
    PRIMARY KEY (repo, commit_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS commit_reach (
    repo      TEXT NOT NULL,  -- repos.repo
    commit_id TEXT NOT NULL,  -- a commit no branch, tag or HEAD reaches (every other commit is the project's)
    reach     TEXT NOT NULL,  -- 'pull requests only' (refs/pull/*, refs/merge-requests/*) or 'other refs only'
    PRIMARY KEY (repo, commit_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS occurrences (
    repo            TEXT NOT NULL,     -- repos.repo
    detector        TEXT NOT NULL,     -- detector id
    commit_id       TEXT NOT NULL,     -- the commit that introduces the secret at path
    path            TEXT NOT NULL,     -- UTF-8 (undecodable bytes as U+FFFD)
    line            INTEGER NOT NULL,  -- 1-based line of the client_id in the blob
    blob            TEXT NOT NULL,     -- hex id of the blob at path in that commit
    client_id       TEXT NOT NULL,     -- public half
    secret_redacted TEXT NOT NULL,     -- e.g. ce23…ef
    secret_sha256   TEXT NOT NULL,     -- joins checks
    author_email    TEXT NOT NULL,
    author_time     TEXT NOT NULL,     -- ISO 8601 UTC
    -- Added in schema 4 (an older store gains them empty; its next scan attributes each repository afresh).
    author_name     TEXT,              -- as the commit says it
    commit_message  TEXT,              -- its first line, the occurrence's own secret replaced by [secret]
    commit_time     TEXT,              -- committer time, ISO 8601 UTC
    -- the detector is part of the key (schema 4): two detectors matching one pair are two secrets (SPEC §4)
    PRIMARY KEY (repo, detector, commit_id, path, secret_sha256)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS tip_presence (
    repo          TEXT NOT NULL,  -- repos.repo
    secret_sha256 TEXT NOT NULL,  -- a secret still present in some ref tip's tree
    ref           TEXT NOT NULL,  -- e.g. refs/heads/main
    path          TEXT NOT NULL,  -- where it sits in that tip
    PRIMARY KEY (repo, secret_sha256, ref, path)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS removals (
    repo          TEXT NOT NULL,  -- repos.repo
    detector      TEXT NOT NULL,  -- detector id
    commit_id     TEXT NOT NULL,  -- first commit (on that line of history) whose blob at path no longer holds it
    path          TEXT NOT NULL,  -- where a parent still had it
    secret_sha256 TEXT NOT NULL,  -- joins occurrences and checks
    commit_time   TEXT NOT NULL,  -- ISO 8601 UTC: end of that exposure
    PRIMARY KEY (repo, detector, commit_id, path, secret_sha256)  -- with the detector since schema 4
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS exposure_ends (
    repo            TEXT NOT NULL,  -- repos.repo
    commit_id       TEXT NOT NULL,  -- an occurrence: its introducing commit,
    path            TEXT NOT NULL,  -- its path
    secret_sha256   TEXT NOT NULL,  -- and its secret
    removed_commit  TEXT NOT NULL,  -- the earliest removal at that path of that secret that descends from the
                                    -- introducing commit (decided at scan time, from the commit graph)
    removed_time    TEXT NOT NULL,  -- ISO 8601 UTC: the end of that exposure
    PRIMARY KEY (repo, commit_id, path, secret_sha256)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS rescan_state (
    repo    TEXT PRIMARY KEY,  -- repos.repo
    path    TEXT NOT NULL,     -- the git directory it describes; another path starts afresh
    ruleset TEXT NOT NULL,     -- the detector set (and blob size limit) it was computed with; another starts afresh
    tips    BLOB NOT NULL,     -- raw 20-byte ids of the ref tips then: while all stay reachable, only what is new
                               -- is walked
    commits BLOB NOT NULL,     -- raw ids of every commit attributed (the commits table, as one value to load)
    matched BLOB NOT NULL      -- raw ids of the blobs that matched: re-read on a rerun to recover tokens
);
