//! The replicated state machine: committed entries applied through the
//! engine's one write path, snapshots as pinned redb commits.
//!
//! **Apply.** The writes among the entries openraft hands over are applied
//! as one group ([`EngineWriter::write_group`]): conditions are decided
//! here, so every node decides the same, and each write takes its
//! revisions here, in log order (a batch entry's writes one after another,
//! each answered on its own). Nothing is synced: the Raft log made the
//! entries durable. After each group the [`Marker`] (last applied log id,
//! membership, node-id counter) is set on the live memory table, so the
//! flush commits it with exactly the data it covers, and a restart replays
//! exactly the entries after it.
//!
//! **Snapshots.** Building one freezes the memory table, waits (without
//! holding up apply) until every frozen table is flushed, and pins the
//! newest redb commit (a read transaction keeps its pages); its marker
//! says which entries it covers. The snapshot costs a flush, whatever the
//! database size. It is sent as a stream (the marker,
//! then the backup stream of `crate::backup`, then the watch history and
//! idempotency records of `snapshot_extras.rs`), received into a temporary
//! file, and installed in one redb commit that replaces all the data, so
//! readers see the old state or the new.

use std::collections::BTreeSet;
use std::io::{self, Read, Seek, Write};
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use futures_util::{Stream, TryStreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use super::types::{Command, NodeId, Reply, TypeConfig};
use crate::engine::history::HistoryBounds;
use crate::engine::{Engine, EngineWriter, Request};
use crate::error::{Error, Result};
use crate::store::TableReader;
use crate::store::cluster::APPLIED;
use crate::types::Item;

type LogId = LogIdOf<TypeConfig>;
type StoredMembership = StoredMembershipOf<TypeConfig>;
type SnapshotMeta = SnapshotMetaOf<TypeConfig>;
pub type Snapshot = SnapshotOf<TypeConfig, SnapshotData>;

/// Items read from a pinned commit per page when streaming it.
const PAGE_ITEMS: usize = 1024;
/// A page stops early past this many bytes of values (large values).
const PAGE_BYTES: usize = 4 << 20;

/// What the state machine has applied, stored with the data it covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    /// The highest node id given out (ids are never reused).
    pub last_node_id: u64,
    /// The watch history's bounds the log set last
    /// ([`Command::SetHistory`]); none yet: each node's own flags.
    pub history: Option<HistoryBounds>,
    /// Nodes a committed membership change took out of the cluster (ids
    /// are never reused, so this is final): a member asks its peers
    /// whether it is one of them when it hears no leader, which is how a
    /// node removed while it was down or cut off learns it.
    pub removed: BTreeSet<NodeId>,
}

/// A marker as releases before `removed` stored it.
#[derive(Deserialize)]
struct MarkerBeforeRemoved {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    last_node_id: u64,
    history: Option<HistoryBounds>,
}

/// A marker as releases before `history` stored it.
#[derive(Deserialize)]
struct MarkerBeforeHistory {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    last_node_id: u64,
}

impl Marker {
    fn encode(&self) -> Result<Vec<u8>> {
        postcard::to_allocvec(self).map_err(|e| Error::Storage(format!("encode marker: {e}")))
    }

    /// The marker in `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Marker> {
        // A file of an earlier release holds the same fields, less the
        // last ones (postcard stores no field names).
        postcard::from_bytes(bytes)
            .or_else(|e| {
                postcard::from_bytes::<MarkerBeforeRemoved>(bytes)
                    .map(|m| Marker {
                        last_applied: m.last_applied,
                        membership: m.membership,
                        last_node_id: m.last_node_id,
                        history: m.history,
                        removed: BTreeSet::new(),
                    })
                    .map_err(|_| e)
            })
            .or_else(|e| {
                postcard::from_bytes::<MarkerBeforeHistory>(bytes)
                    .map(|m| Marker {
                        last_applied: m.last_applied,
                        membership: m.membership,
                        last_node_id: m.last_node_id,
                        history: None,
                        removed: BTreeSet::new(),
                    })
                    .map_err(|_| e)
            })
            .map_err(|e| Error::Corrupt(format!("bad cluster marker: {e}")))
    }
}

/// A snapshot's data: a pinned redb commit (built here), or a received
/// stream in a temporary file (to install).
pub enum SnapshotData {
    Pinned(Arc<Pinned>),
    File(std::fs::File),
}

impl std::fmt::Debug for SnapshotData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotData::Pinned(p) => write!(f, "Pinned(revision {})", p.revision),
            SnapshotData::File(_) => write!(f, "File"),
        }
    }
}

/// One redb commit, kept readable while a snapshot of it is current.
pub struct Pinned {
    reader: TableReader,
    revision: u64,
    marker: Marker,
}

impl Pinned {
    /// Pins the store's last commit (with an empty marker when nothing
    /// was applied yet).
    fn of(engine: &Engine) -> Result<Pinned> {
        let snap = engine.store().snapshot()?;
        let marker = match snap.cluster_value(APPLIED)? {
            Some(bytes) => Marker::decode(&bytes)?,
            None => Marker::default(),
        };
        let reader = snap.reader()?;
        Ok(Pinned {
            revision: reader.revision(),
            reader,
            marker,
        })
    }

    fn meta(&self) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: self.marker.last_applied,
            last_membership: self.marker.membership.clone(),
        }
    }

    /// Visits every item in key order, a page at a time.
    fn visit(&self, visit: &mut crate::backup::Visit<'_>) -> Result<()> {
        let mut page = Vec::with_capacity(PAGE_ITEMS);
        let mut after: Option<Vec<u8>> = None;
        loop {
            page.clear();
            let lower = match &after {
                Some(k) => Bound::Excluded(k.as_slice()),
                None => Bound::Unbounded,
            };
            let more = self.reader.page(
                lower,
                Bound::Unbounded,
                false,
                (PAGE_ITEMS, PAGE_BYTES),
                &mut page,
            )?;
            for (k, v, r, at) in &page {
                visit(
                    k,
                    Item {
                        value: v,
                        revision: *r,
                        expires_at_ms: *at,
                    },
                )?;
            }
            match page.pop() {
                Some((k, _, _, _)) if more => after = Some(k),
                _ => return Ok(()),
            }
        }
    }

    /// Writes the snapshot stream: marker length and marker, then the
    /// backup stream of the data.
    pub fn write_to(&self, out: &mut dyn Write) -> Result<()> {
        let io = |e| Error::io("cannot send a snapshot", e);
        let marker = self.marker.encode()?;
        out.write_all(&(marker.len() as u32).to_le_bytes())
            .map_err(io)?;
        out.write_all(&marker).map_err(io)?;
        let mut buf = Vec::with_capacity(1 << 16);
        crate::backup::encode_header(&mut buf, self.revision);
        let mut entries = 0u64;
        self.visit(&mut |k, item| {
            crate::backup::encode_entry(&mut buf, k, item);
            entries += 1;
            if buf.len() >= 1 << 16 {
                out.write_all(&buf).map_err(io)?;
                buf.clear();
            }
            Ok(())
        })?;
        crate::backup::encode_end(&mut buf, entries);
        out.write_all(&buf).map_err(io)?;
        super::snapshot_extras::write(&self.reader, out)
    }

    /// The history and idempotency records of the pinned commit, as a
    /// received snapshot gives them (a snapshot installed from memory).
    fn extras(&self, sink: &mut dyn FnMut(crate::store::Replaced<'_>) -> Result<()>) -> Result<()> {
        super::snapshot_extras::visit(&self.reader, sink)
    }
}

/// The state machine openraft drives.
pub struct StateMachine {
    writer: Arc<Mutex<EngineWriter>>,
    engine: Arc<Engine>,
    marker: Marker,
    current: Arc<Mutex<Option<Arc<Pinned>>>>,
    /// Whether to log when this node takes history bounds other than its
    /// own flags (a server does; a command catching up does not).
    note_history: bool,
}

/// Builds snapshots beside the state machine.
pub struct SnapshotBuilder {
    writer: Arc<Mutex<EngineWriter>>,
    engine: Arc<Engine>,
    current: Arc<Mutex<Option<Arc<Pinned>>>>,
}

fn io_err(e: Error) -> io::Error {
    io::Error::other(e.to_string())
}

/// Consecutive write entries gathered for one engine group: their
/// requests in order, and per entry its responder and how many requests
/// it carries and whether it is a batch (answered with a reply per write).
#[derive(Default)]
struct Collected {
    requests: Vec<Request>,
    answers: Vec<(
        Option<openraft::storage::ApplyResponder<TypeConfig>>,
        usize,
        bool,
    )>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl StateMachine {
    /// The state machine over an engine started with
    /// `Engine::start_replicated`; its state is the store's marker.
    pub fn new(engine: Arc<Engine>, writer: EngineWriter) -> Result<StateMachine> {
        let marker = match engine.store().cluster_value(APPLIED)? {
            Some(bytes) => Marker::decode(&bytes)?,
            None => Marker::default(),
        };
        engine.set_replicated_history_bounds(marker.history);
        Ok(StateMachine {
            writer: Arc::new(Mutex::new(writer)),
            engine,
            marker,
            current: Arc::new(Mutex::new(None)),
            note_history: false,
        })
    }

    /// Logs, now and whenever the log changes them, that this node keeps
    /// history bounds other than its own flags.
    pub fn noting_history_bounds(mut self) -> StateMachine {
        self.note_history = true;
        self.note_history_bounds(self.marker.history);
        self
    }

    fn note_history_bounds(&self, kept: Option<HistoryBounds>) {
        let own = self.engine.own_history_bounds();
        if let Some(kept) = kept.filter(|k| self.note_history && *k != own) {
            crate::server::log::event(format_args!(
                "kvr serve: this node keeps the cluster's watch history bounds, --history {} \
                 --history-bytes {}, not its own --history {} --history-bytes {}: the \
                 leader's hold for every node, and this node's take over only while it leads",
                kept.events, kept.bytes, own.events, own.bytes
            ));
        }
    }

    /// Whether a membership change applied here took node `id` out of
    /// the cluster.
    pub fn was_removed(&self, id: NodeId) -> bool {
        self.marker.removed.contains(&id)
    }

    /// The engine's writer, for the flush timer and shutdown.
    /// The last entry the file holds as applied.
    pub fn last_applied(&self) -> Option<LogId> {
        self.marker.last_applied
    }

    pub fn writer(&self) -> Arc<Mutex<EngineWriter>> {
        self.writer.clone()
    }

    /// The engine under it.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Applies the writes collected so far as one group and answers them.
    fn apply_writes(&mut self, writes: &mut Collected) -> Result<()> {
        if writes.requests.is_empty() {
            return Ok(());
        }
        let requests = std::mem::take(&mut writes.requests);
        let outcomes = locked(&self.writer).write_group(requests)?;
        let mut outcomes = outcomes.iter();
        for (responder, n, batch) in writes.answers.drain(..) {
            let mut replies: Vec<Reply> = outcomes.by_ref().take(n).map(Reply::of).collect();
            let reply = match batch {
                true => Reply::Batch(replies),
                false => replies.pop().unwrap_or(Reply::None),
            };
            if let Some(r) = responder {
                r.send(reply);
            }
        }
        Ok(())
    }

    fn set_marker(&mut self) -> Result<()> {
        let bytes = self.marker.encode()?;
        let mut w = locked(&self.writer);
        w.set_applied(bytes);
        w.maybe_freeze()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> std::result::Result<Snapshot, io::Error> {
        // Freeze what was applied, then wait for the flush without the
        // writer: applying entries goes on meanwhile (holding it for the
        // flush stalled every write for the flush's length).
        locked(&self.writer).freeze_now().map_err(io_err)?;
        let engine = self.engine.clone();
        let flushed = tokio::task::spawn_blocking(move || engine.wait_flushed())
            .await
            .map_err(io::Error::other)?;
        if !flushed {
            return Err(io::Error::other("cannot build a snapshot: a flush failed"));
        }
        let pinned = Arc::new(Pinned::of(&self.engine).map_err(io_err)?);
        *locked(&self.current) = Some(pinned.clone());
        Ok(Snapshot {
            meta: pinned.meta(),
            snapshot: SnapshotData::Pinned(pinned),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> std::result::Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.marker.last_applied, self.marker.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> std::result::Result<(), io::Error>
    where
        Strm: Stream<Item = std::result::Result<EntryResponder<TypeConfig>, io::Error>>
            + Unpin
            + OptionalSend,
    {
        let mut writes = Collected::default();
        while let Some((entry, responder)) = entries.try_next().await? {
            match entry.payload {
                EntryPayload::Normal(Command::Write(w)) => {
                    // Shared with the log's cache: copied out here.
                    writes.requests.push(Arc::unwrap_or_clone(w).into_request());
                    writes.answers.push((responder, 1, false));
                }
                EntryPayload::Normal(Command::Batch(b)) => {
                    let n = b.len();
                    let b = Arc::unwrap_or_clone(b);
                    writes.requests.extend(
                        b.into_iter()
                            .map(|w| Arc::unwrap_or_clone(w).into_request()),
                    );
                    writes.answers.push((responder, n, true));
                }
                EntryPayload::Normal(Command::NewNodeId) => {
                    self.apply_writes(&mut writes).map_err(io_err)?;
                    let highest = self
                        .marker
                        .membership
                        .membership()
                        .nodes()
                        .map(|(id, _)| *id)
                        .max()
                        .unwrap_or(0);
                    let id = self.marker.last_node_id.max(highest).max(1) + 1;
                    self.marker.last_node_id = id;
                    if let Some(r) = responder {
                        r.send(Reply::NodeId(id));
                    }
                }
                EntryPayload::Normal(Command::SetHistory(bounds)) => {
                    // The writes before it trimmed by the bounds before it.
                    self.apply_writes(&mut writes).map_err(io_err)?;
                    if self.marker.history != Some(bounds) {
                        self.note_history_bounds(Some(bounds));
                    }
                    self.marker.history = Some(bounds);
                    self.engine.set_replicated_history_bounds(Some(bounds));
                    if let Some(r) = responder {
                        r.send(Reply::None);
                    }
                }
                EntryPayload::Membership(m) => {
                    self.apply_writes(&mut writes).map_err(io_err)?;
                    let before = self.marker.membership.membership();
                    let gone: Vec<NodeId> = before
                        .nodes()
                        .map(|(id, _)| *id)
                        .filter(|id| m.get_node(id).is_none())
                        .collect();
                    self.marker.removed.extend(gone);
                    self.marker.membership = StoredMembership::new(Some(entry.log_id), m);
                    if let Some(r) = responder {
                        r.send(Reply::None);
                    }
                }
                EntryPayload::Blank => {
                    if let Some(r) = responder {
                        r.send(Reply::None);
                    }
                }
            }
            self.marker.last_applied = Some(entry.log_id);
        }
        self.apply_writes(&mut writes).map_err(io_err)?;
        self.set_marker().map_err(io_err)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            writer: self.writer.clone(),
            engine: self.engine.clone(),
            current: self.current.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> std::result::Result<(), io::Error> {
        let (revision, marker) = match &snapshot {
            SnapshotData::Pinned(p) => (p.revision, p.marker.clone()),
            SnapshotData::File(f) => {
                let mut f = f;
                f.rewind()?;
                let marker = read_marker(&mut f).map_err(io_err)?;
                let mut head = [0u8; 16];
                f.read_exact(&mut head)?;
                let mut rev = [0u8; 8];
                rev.copy_from_slice(&head[8..]);
                (u64::from_le_bytes(rev), marker)
            }
        };
        let marker = Marker {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            last_node_id: marker.last_node_id,
            history: marker.history,
            removed: marker.removed,
        };
        let bytes = marker.encode().map_err(io_err)?;
        locked(&self.writer)
            .replace_all(revision, &bytes, |visit, extras| match &snapshot {
                SnapshotData::Pinned(p) => {
                    p.visit(visit)?;
                    p.extras(extras)
                }
                SnapshotData::File(f) => {
                    let mut f = f;
                    f.rewind()
                        .map_err(|e| Error::io("cannot read a snapshot", e))?;
                    read_marker(&mut f)?;
                    let mut input = io::BufReader::with_capacity(1 << 20, f);
                    crate::backup::decode(
                        &mut input,
                        |e| Error::io("cannot read a snapshot", e),
                        |k, item| visit(k, item),
                    )?;
                    super::snapshot_extras::read(&mut input, extras)
                }
            })
            .map_err(io_err)?;
        self.engine.set_replicated_history_bounds(marker.history);
        if self.marker.history != marker.history {
            self.note_history_bounds(marker.history);
        }
        self.marker = marker;
        *locked(&self.current) = Some(Arc::new(Pinned::of(&self.engine).map_err(io_err)?));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> std::result::Result<Option<Snapshot>, io::Error> {
        let mut current = locked(&self.current);
        if current.is_none() {
            // After a restart: the store's last commit is a snapshot too.
            let pinned = Pinned::of(&self.engine).map_err(io_err)?;
            if pinned.marker.last_applied.is_some() {
                *current = Some(Arc::new(pinned));
            }
        }
        Ok(current.as_ref().map(|p| Snapshot {
            meta: p.meta(),
            snapshot: SnapshotData::Pinned(p.clone()),
        }))
    }
}

/// Reads the marker at the start of a snapshot stream.
fn read_marker(input: &mut dyn Read) -> Result<Marker> {
    let io = |e| Error::io("cannot read a snapshot", e);
    let mut len = [0u8; 4];
    input.read_exact(&mut len).map_err(io)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > 1 << 20 {
        return Err(Error::Corrupt("bad snapshot: marker too long".into()));
    }
    let mut bytes = vec![0u8; len];
    input.read_exact(&mut bytes).map_err(io)?;
    Marker::decode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A marker as releases before `history` wrote it.
    #[derive(Serialize)]
    struct OldMarker {
        last_applied: Option<LogId>,
        membership: StoredMembership,
        last_node_id: u64,
    }

    #[test]
    fn a_marker_of_an_earlier_release_reads_with_no_history_bounds() {
        let log_id = openraft::testing::log_id::<TypeConfig>(3, 1, 42);
        let old = postcard::to_allocvec(&OldMarker {
            last_applied: Some(log_id),
            membership: StoredMembership::default(),
            last_node_id: 7,
        })
        .unwrap();
        let m = Marker::decode(&old).unwrap();
        assert_eq!(m.last_applied, Some(log_id));
        assert_eq!(m.last_node_id, 7);
        assert_eq!(m.history, None);

        let new = Marker {
            history: Some(HistoryBounds {
                events: 5,
                bytes: 9,
            }),
            ..m.clone()
        };
        assert_eq!(Marker::decode(&new.encode().unwrap()).unwrap(), new);
        assert!(Marker::decode(&old[..old.len() - 1]).is_err());
    }

    /// A marker as releases before `removed` wrote it.
    #[derive(Serialize)]
    struct MarkerWithHistory {
        last_applied: Option<LogId>,
        membership: StoredMembership,
        last_node_id: u64,
        history: Option<HistoryBounds>,
    }

    #[test]
    fn a_marker_of_an_earlier_release_reads_with_no_removed_nodes() {
        let log_id = openraft::testing::log_id::<TypeConfig>(2, 1, 17);
        let history = Some(HistoryBounds {
            events: 5,
            bytes: 9,
        });
        let old = postcard::to_allocvec(&MarkerWithHistory {
            last_applied: Some(log_id),
            membership: StoredMembership::default(),
            last_node_id: 4,
            history,
        })
        .unwrap();
        let m = Marker::decode(&old).unwrap();
        assert_eq!(
            (m.last_applied, m.last_node_id, m.history),
            (Some(log_id), 4, history)
        );
        assert!(m.removed.is_empty());

        let new = Marker {
            removed: BTreeSet::from([2, 3]),
            ..m
        };
        assert_eq!(Marker::decode(&new.encode().unwrap()).unwrap(), new);
    }
}
