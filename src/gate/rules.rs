//! The upgrade rules: can etcd `target` start from this member's data, and replay it?
//!
//! Each rule is judged per member and names its source in etcd (file and function, v3.4.23 /
//! v3.5.33 / v3.6.14 / v3.7.1 tags) or etcd's upgrade documentation. `Blocked` fails the gate;
//! `Warning` and `Info` are reported and do not.

use super::facts::MemberFacts;
use super::v2::{fate, V2Fate};
use super::version::Version;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The target cannot start from, or replay, this data.
    Blocked,
    /// Starts, but something needs attention first.
    Warning,
    /// Nothing to fix; worth knowing (e.g. v2 entries the target translates).
    Info,
    Pass,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Blocked => "BLOCKED",
            Status::Warning => "warning",
            Status::Info => "info",
            Status::Pass => "ok",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RuleResult {
    pub rule: &'static str,
    pub status: Status,
    pub member: String,
    pub message: String,
    /// The raft indexes the result is about (blocking entries first).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub raft_indexes: Vec<u64>,
    /// One line per entry or reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    pub source: &'static str,
}

/// Every rule id, in report order.
pub const RULES: &[&str] = &[
    "version.upgrade_path",
    "version.minimal_etcd_version",
    "v2.wal_requests",
    "v2.store_content",
    "apply.panics",
    "membership.conf_change_kinds",
    "membership.learners",
    "membership.learner_promotion",
    "auth.rolling_upgrade",
    "storage.schema_version",
];

#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// etcd 3.6's `--max-learners` (default 1, `membership.DefaultMaxLearners`).
    pub max_learners: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { max_learners: 1 }
    }
}

const SRC_POLICY: &str = "etcd upgrade policy (etcd.io/docs/v3.6/upgrades/upgrading-etcd: one minor version at a time; upgrade_3_6: \"the running cluster must be 3.5 or greater\"); 3.6 server/etcdserver/server.go publishV3 + 3.4 etcdserver/apply.go applierV3backend.Apply panic(\"not implemented\"); 3.6 server/storage/schema/schema.go DetectSchemaVersion";
const SRC_DOWNGRADE: &str = "3.4 etcdserver/api/membership/cluster.go mustDetectDowngrade; 3.6 server/etcdserver/version/downgrade.go MustDetectDowngrade, IsValidClusterVersionChange";
const SRC_MIN_VERSION: &str = "3.6 server/storage/wal/version.go MinimalEtcdVersion (etcd_version_* proto annotations); schema.UnsafeMigrate";
const SRC_V2_WAL: &str = "3.6 server/etcdserver/apply_v2.go v2ToV3Request (applyEntryNormal); 3.5.33 etcdutl check v2store (checkV2WALRecords); 3.7 server/etcdserver/apply/apply.go Apply";
const SRC_V2_STORE: &str = "3.6 server/storage/util.go AssertNoV2StoreContent + membership.IsMetaStoreOnly (bootstrap.go recoverSnapshot); etcdutl check v2store";
const SRC_APPLY: &str = "etcdserver/server.go EtcdServer.apply / applyEntryNormal (3.4–3.7): pbutil.MustUnmarshal, \"unknown entry type\"";
const SRC_CONF: &str = "etcdserver/server.go EtcdServer.apply (3.4–3.7): only EntryNormal and EntryConfChange; ConfChangeV2 panics \"unknown entry type\"";
const SRC_LEARNERS: &str = "3.6 server/etcdserver/bootstrap.go Finalize → membership.ValidateMaxLearnerConfig (--max-learners, DefaultMaxLearners = 1)";
const SRC_PROMOTION: &str = "etcd#19557 (3.5.1–3.5.19 do not persist learner promotion in the v3 store; fixed 3.5.20); 3.6 bootstrap.go SyncLearnerPromotionIfNeeded";
const SRC_SCHEMA: &str = "3.6 server/storage/schema/schema.go UnsafeDetectSchemaVersion (\"missing confstate information\"), unsafeValidate (warns only), UnsafeMigrate; 3.5.30 server/etcdserver/server.go applyConfChange (beHooks.SetConfState: the only writer of meta/confState, for every accepted conf change, UpdateNode included)";
const SRC_AUTH: &str = "etcd.io/docs/v3.5/upgrades/upgrade_3_5: \"If your cluster enables auth, rolling upgrade from 3.4 or older version isn't supported\"";

fn result(
    rule: &'static str,
    status: Status,
    member: &MemberFacts,
    message: String,
    source: &'static str,
) -> RuleResult {
    RuleResult {
        rule,
        status,
        member: member.label.clone(),
        message,
        raft_indexes: Vec::new(),
        details: Vec::new(),
        source,
    }
}

fn list(indexes: &[u64]) -> String {
    const SHOW: usize = 12;
    let mut parts: Vec<String> = indexes.iter().take(SHOW).map(u64::to_string).collect();
    if indexes.len() > SHOW {
        parts.push(format!("… {} more", indexes.len() - SHOW));
    }
    parts.join(", ")
}

/// Every rule for one member.
pub fn evaluate(m: &MemberFacts, target: Version, options: Options) -> Vec<RuleResult> {
    vec![
        upgrade_path(m, target),
        minimal_version(m, target),
        v2_requests(m, target),
        v2_store(m, target),
        apply_panics(m),
        conf_change_kinds(m),
        learners(m, target, options),
        learner_promotion(m, target),
        auth_rolling(m, target),
        schema_version(m, target),
    ]
}

/// etcd 3.6 reads the storage version from the db (`meta/storageVersion`), or detects it: with
/// `meta/term` and `meta/confState` the db is 3.5. A db upgraded 3.4 → 3.5 has no ConfState
/// until 3.5 applies a conf change: 3.6 starts on it (`schema.Validate` only warns when it
/// cannot detect the schema) but its schema migration fails ("cannot detect storage schema
/// version: missing confstate information"), so the storage version stays unset and `etcdutl
/// migrate` refuses the data dir.
fn schema_version(m: &MemberFacts, target: Version) -> RuleResult {
    const RULE: &str = "storage.schema_version";
    let Some(db) = &m.db else {
        return result(
            RULE,
            Status::Pass,
            m,
            "no backend db read (a WAL-only copy, or an unreadable db): the schema is not checked"
                .into(),
            SRC_SCHEMA,
        );
    };
    let to_3_6 = target.at_least(3, 6);
    let remedy = "apply one membership change under 3.5, e.g. `etcdctl member update <id> --peer-urls=<its current peer URLs>` (3.5 saves the ConfState of every conf change it applies)";
    let mut r = result(RULE, Status::Pass, m, String::new(), SRC_SCHEMA);
    r.raft_indexes = vec![db.consistent_index];
    match (db.generation, db.term.filter(|&t| t > 0), db.has_conf_state) {
        ("3.6", _, _) => r.message = "the db records its storage version (3.6)".into(),
        (_, Some(_), false) => {
            r.status = if to_3_6 {
                Status::Warning
            } else {
                Status::Info
            };
            r.message = format!(
                "the db ({}) has meta/term but no meta/confState, the shape of a db upgraded from 3.4 to 3.5 that has applied no conf change since: etcd 3.6 starts on it (schema.Validate only warns) but cannot migrate its schema (\"cannot detect storage schema version: missing confstate information\"), so meta/storageVersion stays unset and `etcdutl migrate` refuses the data dir. Remedy: {remedy}",
                db.path.display()
            );
        }
        (_, None, _) if target.at_least(3, 5) => {
            r.status = Status::Info;
            r.message = format!(
                "a 3.4 db (no meta/term): etcd 3.5 writes meta/term with the next entry it applies, but meta/confState only with the next conf change; without one, etcd 3.6 cannot migrate the schema (\"missing confstate information\"). On 3.5, {remedy}"
            );
        }
        (_, None, _) => r.message = "a 3.4 db (no meta/term)".into(),
        _ => {
            r.message = format!(
                "the db has meta/term and meta/confState: etcd {} detects its schema as 3.5",
                target.trim()
            )
        }
    }
    r
}

fn snapshot_phrase(m: &MemberFacts) -> String {
    match &m.boot_snapshot {
        Some(s) => format!("the boot snapshot (raft index {}, {})", s.index, s.file),
        None => "the start of the WAL (no .snap to boot from)".into(),
    }
}

fn upgrade_path(m: &MemberFacts, target: Version) -> RuleResult {
    const RULE: &str = "version.upgrade_path";
    let Some(cv) = &m.cluster_version else {
        return result(
            RULE,
            Status::Warning,
            m,
            format!(
                "no cluster version in the committed log or the boot snapshot: cannot check the path to {}",
                target.trim()
            ),
            SRC_POLICY,
        );
    };
    let from = cv.version.trim();
    let to = target.trim();
    let origin = format!(
        "cluster version {} ({} at raft index {})",
        cv.raw, cv.source, cv.index
    );
    let mut r = result(RULE, Status::Pass, m, String::new(), SRC_POLICY);
    r.raft_indexes = vec![cv.index];
    if from.major != to.major {
        r.status = Status::Blocked;
        r.message = format!("{origin} → {to}: etcd does not change major versions");
    } else if from.minor == to.minor {
        r.message = format!("{origin} → {to}: patch upgrade");
    } else if from.minor + 1 == to.minor {
        r.message = format!("{origin} → {to}: one minor version, supported");
        if to.minor == 6 {
            r.status = Status::Info;
            r.details.push(
                "etcd's 3.5 → 3.6 guide requires every 3.5 member at 3.5.26 or later before upgrading (later guides: 3.5.32); the data does not record binary patch levels".into(),
            );
        }
    } else if from.minor < to.minor {
        r.status = Status::Blocked;
        let skipped: Vec<String> = (from.minor + 1..to.minor)
            .map(|minor| format!("{}.{minor}", to.major))
            .collect();
        r.message = format!(
            "{origin} → {to} skips {}: etcd upgrades one minor version at a time. Upgrade every member to the newest {} patch release, wait until the cluster version is {}, then upgrade to {to}",
            skipped.join(", "),
            skipped[0],
            skipped[0],
        );
        if from.minor <= 4 && to.minor >= 6 {
            r.details.push(format!(
                "a {to} member proposes ClusterMemberAttrSet (publishV3) and ClusterVersionSet, InternalRaftRequest fields added in 3.5: a {from} member's applierV3backend.Apply has no case for them and panics (\"not implemented\")"
            ));
            r.details.push(
                "a 3.4 backend has no consistent-index term: 3.6's schema.DetectSchemaVersion fails (\"missing term information\"), so `etcdutl migrate` refuses the data dir and 3.6 cannot detect its storage version (\"Please wait till wal snapshot before upgrading cluster\")".into(),
            );
        }
    } else {
        // A downgrade.
        let enabled = m
            .downgrade
            .as_ref()
            .filter(|d| d.enabled && d.target.is_some_and(|t| t.minor_key() == to.minor_key()));
        if let (Some(d), true) = (enabled, from.minor == to.minor + 1 && to.minor >= 5) {
            r.status = Status::Info;
            r.raft_indexes.push(d.index);
            r.message = format!(
                "{origin} → {to}: a downgrade, enabled by DowngradeInfoSet at raft index {} (etcdctl downgrade enable)",
                d.index
            );
            r.source = SRC_DOWNGRADE;
        } else {
            r.status = Status::Blocked;
            r.source = SRC_DOWNGRADE;
            r.message = format!(
                "{origin} → {to} is a downgrade: etcd {to} refuses to start when the cluster version is newer than itself (\"cluster cannot be downgraded\"); only 3.6+ downgrades, one minor version, after `etcdctl downgrade enable`"
            );
        }
    }
    r
}

fn minimal_version(m: &MemberFacts, target: Version) -> RuleResult {
    const RULE: &str = "version.minimal_etcd_version";
    let lv = &m.log_version;
    let span = format!("entries after {}", snapshot_phrase(m));
    let Some(version) = lv.version else {
        return result(
            RULE,
            Status::Pass,
            m,
            format!("no annotated entries in the {span}: any etcd 3.x can read them"),
            SRC_MIN_VERSION,
        );
    };
    let (first, why) = lv.first_at.clone().unwrap_or_default();
    let mut r = result(RULE, Status::Pass, m, String::new(), SRC_MIN_VERSION);
    if target.minor_lt(version) {
        let newer = lv.newer_than(target);
        r.status = Status::Blocked;
        r.message = format!(
            "the {span} need etcd ≥ {version} (first at raft index {first}: {why}); {} of them are newer than {}",
            newer.len(),
            target.trim()
        );
        r.raft_indexes = newer.iter().map(|(i, _)| *i).collect();
        r.details = newer
            .iter()
            .take(20)
            .map(|(i, a)| format!("raft index {i}: {} needs {}", a.path, a.version))
            .collect();
    } else {
        r.message = format!(
            "the {span} need etcd ≥ {version} (first at raft index {first}: {why}) ≤ {}",
            target.trim()
        );
        r.raft_indexes = vec![first];
    }
    r
}

fn v2_requests(m: &MemberFacts, target: Version) -> RuleResult {
    const RULE: &str = "v2.wal_requests";
    let span = format!("after {}", snapshot_phrase(m));
    if m.v2_entries.is_empty() {
        return result(
            RULE,
            Status::Pass,
            m,
            format!("no v2 requests {span}"),
            SRC_V2_WAL,
        );
    }
    let judged: Vec<(&super::facts::V2Entry, V2Fate)> = m
        .v2_entries
        .iter()
        .map(|e| (e, fate(target, &e.request, e.wrapped)))
        .collect();
    // What 3.6 would do, to say it before a 3.5 step too.
    let at_3_6: Vec<V2Fate> = m
        .v2_entries
        .iter()
        .map(|e| fate(Version::new(3, 6), &e.request, e.wrapped))
        .collect();
    let refused: Vec<u64> = judged
        .iter()
        .filter(|(_, f)| f.blocks())
        .map(|(e, _)| e.index)
        .collect();
    let n = m.v2_entries.len();
    let mut r = result(RULE, Status::Info, m, String::new(), SRC_V2_WAL);
    r.raft_indexes = m.v2_entries.iter().map(|e| e.index).collect();
    r.details = judged
        .iter()
        .map(|(e, f)| {
            let what = match f {
                V2Fate::AppliedToV2Store => "applied to the v2 store".to_string(),
                V2Fate::Translated { into } => format!("translated into {into} (v2ToV3Request)"),
                V2Fate::Refused { reason } => format!("REFUSED: {reason}"),
            };
            format!(
                "raft index {} (term {}): {} → {what}",
                e.index,
                e.term,
                e.describe()
            )
        })
        .collect();
    if !refused.is_empty() {
        r.status = Status::Blocked;
        r.message = format!(
            "{} of {n} v2 request(s) {span} make etcd {} panic on replay, at raft index(es) {}. Remove them from the replayed log first: with every member on 3.5, restart with --snapshot-count=1 (etcd's 3.6 upgrade guide) so a new snapshot covers them, then check with `etcdutl check v2store`",
            refused.len(),
            target.trim(),
            list(&refused)
        );
        // Blocking entries first.
        let mut indexes = refused.clone();
        indexes.extend(r.raft_indexes.iter().filter(|i| !refused.contains(i)));
        r.raft_indexes = indexes;
    } else if target.at_least(3, 6) {
        r.message = format!(
            "{n} v2 request(s) {span}, at raft index(es) {}: etcd {} translates every one (PUT /0/members/<id>/attributes, PUT /0/version); not blocking",
            list(&r.raft_indexes),
            target.trim()
        );
    } else {
        let refused_later = at_3_6.iter().filter(|f| f.blocks()).count();
        r.message = format!(
            "{n} v2 request(s) {span}, at raft index(es) {}: etcd {} applies them to the v2 store; etcd 3.6 would {}",
            list(&r.raft_indexes),
            target.trim(),
            if refused_later == 0 {
                "translate all of them".to_string()
            } else {
                format!("refuse {refused_later} of them (panic on replay)")
            }
        );
        if refused_later > 0 {
            r.status = Status::Warning;
        }
    }
    r
}

fn v2_store(m: &MemberFacts, target: Version) -> RuleResult {
    const RULE: &str = "v2.store_content";
    let Some(snap) = &m.boot_snapshot else {
        return result(
            RULE,
            Status::Pass,
            m,
            "no boot snapshot: the v2 store is rebuilt from the WAL (see v2.wal_requests)".into(),
            SRC_V2_STORE,
        );
    };
    let mut r = result(RULE, Status::Pass, m, String::new(), SRC_V2_STORE);
    r.raft_indexes = vec![snap.index];
    match &m.v2store_custom {
        None => {
            r.message = format!(
                "{}: its data is not a v2 store (etcd 3.7+ / main)",
                snap.file
            );
        }
        Some(custom) if custom.is_empty() => {
            r.message = format!(
                "{} (raft index {}): the v2 store holds membership data only",
                snap.file, snap.index
            );
        }
        Some(custom) => {
            r.details = custom.clone();
            if target.at_least(3, 6) {
                r.status = Status::Blocked;
                r.message = format!(
                    "{} (raft index {}) holds custom v2 store content ({}): etcd {} refuses to start (\"detected disallowed custom content in v2store for stage --v2-deprecation=write-only\"); migrate or delete it on 3.5, then take a new snapshot (--snapshot-count=1); later 3.6 patches accept --v2-deprecation=write-only-skip-check",
                    snap.file,
                    snap.index,
                    custom.join(", "),
                    target.trim()
                );
            } else {
                r.status = Status::Warning;
                r.message = format!(
                    "{} (raft index {}) holds custom v2 store content ({}): fine for {}, refused by 3.6",
                    snap.file,
                    snap.index,
                    custom.join(", "),
                    target.trim()
                );
            }
        }
    }
    r
}

fn apply_panics(m: &MemberFacts) -> RuleResult {
    const RULE: &str = "apply.panics";
    let mut all: Vec<(u64, String)> = m.apply_panics.clone();
    for (index, reason) in &m.log_version.panics {
        if !all.iter().any(|(i, _)| i == index) {
            all.push((*index, format!("MinimalEtcdVersion panics: {reason}")));
        }
    }
    all.sort();
    if all.is_empty() {
        return result(
            RULE,
            Status::Pass,
            m,
            format!(
                "every entry after {} decodes as etcd applies it",
                snapshot_phrase(m)
            ),
            SRC_APPLY,
        );
    }
    let mut r = result(RULE, Status::Blocked, m, String::new(), SRC_APPLY);
    r.raft_indexes = all.iter().map(|(i, _)| *i).collect();
    r.message = format!(
        "{} entr(ies) after {} make etcd panic when applied, at raft index(es) {}",
        all.len(),
        snapshot_phrase(m),
        list(&r.raft_indexes)
    );
    r.details = all
        .iter()
        .map(|(i, why)| format!("raft index {i}: {why}"))
        .collect();
    r
}

fn conf_change_kinds(m: &MemberFacts) -> RuleResult {
    const RULE: &str = "membership.conf_change_kinds";
    let boot = m.boot_snapshot.as_ref().map_or(0, |s| s.index);
    let replayed: Vec<u64> = m
        .conf_changes
        .v2_entries
        .iter()
        .copied()
        .filter(|i| *i > boot)
        .collect();
    let summary = m.conf_changes.summary();
    let mut r = result(
        RULE,
        Status::Pass,
        m,
        format!("conf changes in the log: {summary}"),
        SRC_CONF,
    );
    if let Some(at) = m.conf_changes.self_removed_at {
        r.status = Status::Info;
        r.raft_indexes.push(at);
        r.details.push(format!(
            "this member was removed from the cluster at raft index {at}: etcd refuses to restart it (\"the member has been permanently removed from the cluster\")"
        ));
    }
    if m.conf_changes.kinds.contains_key("UpdateNode") {
        r.details
            .push("UpdateNode changes peer URLs only; it is not a raft membership change".into());
    }
    if !replayed.is_empty() {
        r.status = Status::Blocked;
        r.raft_indexes = replayed.clone();
        r.message = format!(
            "ConfChangeV2 entries after {} at raft index(es) {}: etcd (3.4–3.7) only applies EntryNormal and EntryConfChange and panics on these; conf changes in the log: {summary}",
            snapshot_phrase(m),
            list(&replayed)
        );
    }
    r
}

fn learners(m: &MemberFacts, target: Version, options: Options) -> RuleResult {
    const RULE: &str = "membership.learners";
    let l = &m.learners;
    let history = match l.max_at {
        Some(at) if l.max > 0 => format!("; at most {} at once (from raft index {at})", l.max),
        _ => String::new(),
    };
    let Some(now) = &l.now else {
        return result(
            RULE,
            Status::Warning,
            m,
            format!("the configuration at the end of the committed log is unknown: cannot count learners{history}"),
            SRC_LEARNERS,
        );
    };
    let ids: Vec<String> = now.iter().map(|id| format!("{id:x}")).collect();
    let mut r = result(RULE, Status::Pass, m, String::new(), SRC_LEARNERS);
    let counted = format!(
        "{} learner(s) after raft index {}{}{history}",
        now.len(),
        l.now_at,
        if ids.is_empty() {
            String::new()
        } else {
            format!(" ({})", ids.join(", "))
        }
    );
    if target.at_least(3, 6) && now.len() > options.max_learners {
        r.status = Status::Blocked;
        r.raft_indexes = vec![l.now_at];
        r.message = format!(
            "{counted}: etcd {} refuses to start with more than --max-learners={} (\"membership: too many learner members in cluster\"); promote or remove learners first, or raise --max-learners",
            target.trim(),
            options.max_learners
        );
    } else {
        r.message = format!("{counted}; limit {} (--max-learners)", options.max_learners);
    }
    r
}

fn learner_promotion(m: &MemberFacts, target: Version) -> RuleResult {
    const RULE: &str = "membership.learner_promotion";
    let promotions = &m.conf_changes.promotions;
    if promotions.is_empty() {
        return result(
            RULE,
            Status::Pass,
            m,
            "no learner promotions in the log".into(),
            SRC_PROMOTION,
        );
    }
    let listed: Vec<String> = promotions
        .iter()
        .map(|(i, id)| format!("{id:x} at raft index {i}"))
        .collect();
    let mut r = result(RULE, Status::Pass, m, String::new(), SRC_PROMOTION);
    r.raft_indexes = promotions.iter().map(|(i, _)| *i).collect();
    let through_3_5 = m
        .cluster_version
        .as_ref()
        .is_some_and(|c| c.version.minor_key() <= (3, 5));
    if target.at_least(3, 6) && through_3_5 {
        let written_by_3_5 = m
            .cluster_version
            .as_ref()
            .is_some_and(|c| c.version.minor_key() == (3, 5));
        r.status = if written_by_3_5 {
            Status::Warning
        } else {
            Status::Info
        };
        r.message = format!(
            "{} learner promotion(s) ({}): etcd 3.5.1–3.5.19 do not persist a promotion in the v3 store, and 3.6 reads membership from it — promoted members come back as learners (\"too many learner members\"). Run 3.5.20 or later for the 3.5 step",
            promotions.len(),
            listed.join(", ")
        );
    } else {
        r.message = format!(
            "{} learner promotion(s) ({})",
            promotions.len(),
            listed.join(", ")
        );
    }
    r
}

fn auth_rolling(m: &MemberFacts, target: Version) -> RuleResult {
    const RULE: &str = "auth.rolling_upgrade";
    let from_3_4 = m
        .cluster_version
        .as_ref()
        .is_some_and(|c| c.version.minor_key() <= (3, 4));
    match m.auth_enabled_at {
        Some(at) if from_3_4 && target.at_least(3, 5) => {
            let mut r = result(
                RULE,
                Status::Warning,
                m,
                format!(
                    "auth is enabled (AuthEnable at raft index {at}): a rolling upgrade from 3.4 to 3.5 is not supported with auth on (3.5 changes the auth WAL entries); stop every member, then start them all on 3.5"
                ),
                SRC_AUTH,
            );
            r.raft_indexes = vec![at];
            r
        }
        Some(at) => result(
            RULE,
            Status::Pass,
            m,
            format!("auth enabled at raft index {at}; no auth constraint on this upgrade"),
            SRC_AUTH,
        ),
        None => result(
            RULE,
            Status::Pass,
            m,
            "auth is not enabled in the log".into(),
            SRC_AUTH,
        ),
    }
}
