//! The watch table (`WatchManager`): one-shot data/exists and child watches, persistent
//! and persistent-recursive watches, as two tables (data, child) keyed by path.
//!
//! Triggering costs in proportion to the watchers hit: a change looks up its own path,
//! and walks up to the root only while some recursive watch exists anywhere. A watcher is
//! a connection: its watches die with it, and a reconnecting client re-registers them with
//! setWatches.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::metrics::Summary;
use crate::proto::records::Acl;

use crate::tree::{split_path, Change};

pub type WatcherId = u64;

/// `Watcher.Event.EventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum EventType {
    None = -1,
    NodeCreated = 1,
    NodeDeleted = 2,
    NodeDataChanged = 3,
    NodeChildrenChanged = 4,
    DataWatchRemoved = 5,
    ChildWatchRemoved = 6,
    PersistentWatchRemoved = 7,
}

/// `WatcherMode`. A (watcher, path) pair has one mode per table; registering a standard
/// watch where a persistent one exists turns it back into a standard one, as in
/// ZooKeeper's `WatcherModeManager`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Standard,
    Persistent,
    PersistentRecursive,
}

impl Mode {
    pub fn is_persistent(self) -> bool {
        self != Mode::Standard
    }
    pub fn is_recursive(self) -> bool {
        self == Mode::PersistentRecursive
    }
}

/// `WatcherType` of checkWatches/removeWatches (3.8 knows these three).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatcherType {
    Children = 1,
    Data = 2,
    Any = 3,
}

impl WatcherType {
    pub fn from_i32(v: i32) -> Option<Self> {
        match v {
            1 => Some(WatcherType::Children),
            2 => Some(WatcherType::Data),
            3 => Some(WatcherType::Any),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    by_path: HashMap<Box<str>, HashMap<WatcherId, Mode>>,
    by_watcher: HashMap<WatcherId, HashSet<Box<str>>>,
    recursive: usize,
}

impl Table {
    fn add(&mut self, path: &str, w: WatcherId, mode: Mode) -> bool {
        let modes = self.by_path.entry(path.into()).or_default();
        if let Some(old) = modes.insert(w, mode) {
            if old.is_recursive() {
                self.recursive -= 1;
            }
        }
        if mode.is_recursive() {
            self.recursive += 1;
        }
        self.by_watcher.entry(w).or_default().insert(path.into())
    }

    fn contains(&self, path: &str, w: WatcherId) -> bool {
        self.by_path.get(path).is_some_and(|m| m.contains_key(&w))
    }

    /// `containsWatcher` walks `PathParentIterator`, whose `next` computes the parent of
    /// the path it yields: a path without `/` throws at once; a relative path with one
    /// throws when the walk goes on to parents, which it does (past an unwatched path)
    /// only while the table holds a recursive watch. `""` yields nothing: false.
    fn path_watched(&self, path: &str) -> Option<bool> {
        if path.is_empty() {
            return Some(false);
        }
        if !path.contains('/') {
            return None;
        }
        if self.by_path.contains_key(path) {
            return Some(true);
        }
        if self.recursive > 0 && !path.starts_with('/') {
            return None;
        }
        Some(false)
    }

    fn remove(&mut self, path: &str, w: WatcherId) -> bool {
        let Some(paths) = self.by_watcher.get_mut(&w) else {
            return false;
        };
        // An emptied set stays until the connection goes, as `watch2Paths` keeps it:
        // `wchs` counts that connection.
        if !paths.remove(path) {
            return false;
        }
        let Some(modes) = self.by_path.get_mut(path) else {
            return false;
        };
        let Some(mode) = modes.remove(&w) else {
            return false;
        };
        if mode.is_recursive() {
            self.recursive -= 1;
        }
        if modes.is_empty() {
            self.by_path.remove(path);
        }
        true
    }

    fn remove_watcher(&mut self, w: WatcherId) {
        let Some(paths) = self.by_watcher.remove(&w) else {
            return;
        };
        for p in paths {
            if let Some(modes) = self.by_path.get_mut(&p) {
                if let Some(m) = modes.remove(&w) {
                    if m.is_recursive() {
                        self.recursive -= 1;
                    }
                }
                if modes.is_empty() {
                    self.by_path.remove(&p);
                }
            }
        }
    }

    /// `triggerWatch`: the watchers `event` on `path` reaches, each once, skipping
    /// `suppress`. One-shot watches on `path` itself are consumed; recursive watches on
    /// `path` or any ancestor see every event but NodeChildrenChanged.
    /// Returns how many distinct watchers matched, the suppressed ones included (the
    /// sample `triggerWatch` records).
    fn trigger(
        &mut self,
        path: &str,
        event: EventType,
        suppress: &[WatcherId],
        out: &mut Vec<WatcherId>,
    ) -> usize {
        let start = out.len();
        let mut at = path;
        let mut at_parent = false;
        loop {
            if let Some(modes) = self.by_path.get_mut(at) {
                let mut consumed = Vec::new();
                for (&w, &mode) in modes.iter() {
                    if mode.is_recursive() {
                        if event != EventType::NodeChildrenChanged {
                            out.push(w);
                        }
                    } else if !at_parent {
                        out.push(w);
                        if !mode.is_persistent() {
                            consumed.push(w);
                        }
                    }
                }
                for w in consumed {
                    modes.remove(&w);
                    if let Some(ps) = self.by_watcher.get_mut(&w) {
                        ps.remove(at);
                    }
                }
                if modes.is_empty() {
                    self.by_path.remove(at);
                }
            }
            if self.recursive == 0 || at == "/" {
                break;
            }
            at = split_path(at).0;
            if at.is_empty() {
                break;
            }
            at_parent = true;
        }
        // One path's table holds each watcher once; only a walk over ancestors or a
        // suppress list can bring duplicates or exclusions.
        if at_parent || !suppress.is_empty() {
            let mut seen = HashSet::new();
            let suppress: HashSet<WatcherId> = suppress.iter().copied().collect();
            let mut i = 0;
            out.retain(|w| {
                i += 1;
                i <= start || (seen.insert(*w) && !suppress.contains(w))
            });
            seen.len()
        } else {
            out.len() - start
        }
    }

    fn count(&self) -> usize {
        self.by_path.values().map(|m| m.len()).sum()
    }
}

/// One event for one watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub watcher: WatcherId,
    pub event: EventType,
    pub path: String,
    /// The ACL whose READ permission the watcher needs to see it: the changed node's, or
    /// for NodeChildrenChanged its parent's (`ServerCnxn.process` checks it at delivery).
    pub acl: Arc<[Acl]>,
}

#[derive(Debug, Default)]
pub struct WatchManager {
    data: Table,
    child: Table,
    /// Watchers matched per trigger, for `mntr`.
    pub trigger_counts: TriggerCounts,
}

/// `mntr`'s `node_{created,deleted,changed,children}_watch_count`: one sample per table
/// lookup that matched anyone, of how many it matched.
#[derive(Debug, Default, Clone)]
pub struct TriggerCounts {
    pub created: Summary,
    pub deleted: Summary,
    pub changed: Summary,
    pub children: Summary,
}

impl WatchManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// getData, and exists (whether or not the node exists).
    pub fn add_data_watch(&mut self, path: &str, w: WatcherId) {
        self.data.add(path, w, Mode::Standard);
    }

    /// getChildren, getChildren2.
    pub fn add_child_watch(&mut self, path: &str, w: WatcherId) {
        self.child.add(path, w, Mode::Standard);
    }

    /// addWatch: persistent watches sit in both tables (`DataTree.addWatch`).
    pub fn add_persistent(&mut self, path: &str, w: WatcherId, recursive: bool) {
        let mode = if recursive {
            Mode::PersistentRecursive
        } else {
            Mode::Persistent
        };
        self.data.add(path, w, mode);
        self.child.add(path, w, mode);
    }

    pub fn contains(&self, path: &str, ty: WatcherType, w: WatcherId) -> bool {
        match ty {
            WatcherType::Children => self.child.contains(path, w),
            WatcherType::Data => self.data.contains(path, w),
            WatcherType::Any => self.child.contains(path, w) || self.data.contains(path, w),
        }
    }

    /// checkWatches as ZooKeeper's `WatchManager.containsWatcher` answers it: whether
    /// anyone watches `path` in that table, whichever connection asks. `None` where
    /// ZooKeeper's walk up the path throws (the caller answers MarshallingError).
    pub fn path_watched(&self, path: &str, ty: WatcherType) -> Option<bool> {
        let d = || self.data.path_watched(path);
        let c = || self.child.path_watched(path);
        Some(match ty {
            WatcherType::Children => c()?,
            WatcherType::Data => d()?,
            WatcherType::Any => c()? || d()?,
        })
    }

    pub fn remove(&mut self, path: &str, ty: WatcherType, w: WatcherId) -> bool {
        match ty {
            WatcherType::Children => self.child.remove(path, w),
            WatcherType::Data => self.data.remove(path, w),
            WatcherType::Any => {
                let c = self.child.remove(path, w);
                let d = self.data.remove(path, w);
                c || d
            }
        }
    }

    /// A connection went away: all its watches go with it.
    pub fn remove_watcher(&mut self, w: WatcherId) {
        self.data.remove_watcher(w);
        self.child.remove_watcher(w);
    }

    /// Turns tree changes into events, in ZooKeeper's order: per change, the data table
    /// first, then the child table.
    pub fn trigger(&mut self, changes: &[Change], out: &mut Vec<Fired>) {
        let mut ws = Vec::new();
        for c in changes {
            match c {
                Change::Created {
                    path,
                    acl,
                    parent_acl,
                } => {
                    self.fire(
                        TableSel::Data,
                        path,
                        EventType::NodeCreated,
                        &[],
                        acl,
                        &mut ws,
                        out,
                    );
                    let parent = split_path(path).0;
                    self.fire(
                        TableSel::Child,
                        parent,
                        EventType::NodeChildrenChanged,
                        &[],
                        parent_acl,
                        &mut ws,
                        out,
                    );
                }
                Change::Deleted {
                    path,
                    acl,
                    parent_acl,
                } => {
                    let first = out.len();
                    self.fire(
                        TableSel::Data,
                        path,
                        EventType::NodeDeleted,
                        &[],
                        acl,
                        &mut ws,
                        out,
                    );
                    let hit: Vec<WatcherId> = out[first..].iter().map(|f| f.watcher).collect();
                    self.fire(
                        TableSel::Child,
                        path,
                        EventType::NodeDeleted,
                        &hit,
                        acl,
                        &mut ws,
                        out,
                    );
                    let parent = split_path(path).0;
                    self.fire(
                        TableSel::Child,
                        parent,
                        EventType::NodeChildrenChanged,
                        &[],
                        parent_acl,
                        &mut ws,
                        out,
                    );
                }
                Change::DataChanged { path, acl } => {
                    self.fire(
                        TableSel::Data,
                        path,
                        EventType::NodeDataChanged,
                        &[],
                        acl,
                        &mut ws,
                        out,
                    );
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fire(
        &mut self,
        which: TableSel,
        path: &str,
        event: EventType,
        suppress: &[WatcherId],
        acl: &Arc<[Acl]>,
        scratch: &mut Vec<WatcherId>,
        out: &mut Vec<Fired>,
    ) {
        scratch.clear();
        let t = match which {
            TableSel::Data => &mut self.data,
            TableSel::Child => &mut self.child,
        };
        let matched = t.trigger(path, event, suppress, scratch);
        if matched > 0 {
            let c = &mut self.trigger_counts;
            match event {
                EventType::NodeCreated => c.created.add(matched as i64),
                EventType::NodeDeleted => c.deleted.add(matched as i64),
                EventType::NodeDataChanged => c.changed.add(matched as i64),
                EventType::NodeChildrenChanged => c.children.add(matched as i64),
                _ => {}
            }
        }
        out.extend(scratch.iter().map(|&w| Fired {
            watcher: w,
            event,
            path: path.to_owned(),
            acl: acl.clone(),
        }));
    }

    /// Total watches (`watch_count` in mntr, `wchs`).
    pub fn count(&self) -> usize {
        self.data.count() + self.child.count()
    }

    pub fn path_count(&self) -> usize {
        let mut paths: HashSet<&str> = self.data.by_path.keys().map(|k| &**k).collect();
        paths.extend(self.child.by_path.keys().map(|k| &**k));
        paths.len()
    }

    /// watcher → paths, for `wchc`.
    pub fn by_watcher(&self) -> HashMap<WatcherId, Vec<String>> {
        let mut m: HashMap<WatcherId, Vec<String>> = HashMap::new();
        for t in [&self.data, &self.child] {
            for (w, ps) in &t.by_watcher {
                m.entry(*w)
                    .or_default()
                    .extend(ps.iter().map(|p| p.to_string()));
            }
        }
        for v in m.values_mut() {
            v.sort();
            v.dedup();
        }
        m
    }

    /// path → watchers, for `wchp`.
    pub fn by_path(&self) -> HashMap<String, Vec<WatcherId>> {
        let mut m: HashMap<String, Vec<WatcherId>> = HashMap::new();
        for t in [&self.data, &self.child] {
            for (p, ws) in &t.by_path {
                m.entry(p.to_string()).or_default().extend(ws.keys());
            }
        }
        for v in m.values_mut() {
            v.sort();
            v.dedup();
        }
        m
    }

    /// `wchs` (`WatchManager.toString` of the data table): connections that ever set a
    /// data watch and have not gone away, distinct watched paths, and watches.
    pub fn data_watch_summary(&self) -> (usize, usize, usize) {
        let total = self.data.by_watcher.values().map(|p| p.len()).sum();
        (self.data.by_watcher.len(), self.data.by_path.len(), total)
    }

    /// `wchc`: the data table by watcher (connections with no watch left included), in
    /// watcher order, paths sorted.
    pub fn data_watches_by_watcher(&self) -> Vec<(WatcherId, Vec<String>)> {
        let mut v: Vec<(WatcherId, Vec<String>)> = self
            .data
            .by_watcher
            .iter()
            .map(|(w, ps)| {
                let mut ps: Vec<String> = ps.iter().map(|p| p.to_string()).collect();
                ps.sort_unstable();
                (*w, ps)
            })
            .collect();
        v.sort_unstable_by_key(|(w, _)| *w);
        v
    }

    /// `wchp`: the data table by path, paths sorted, watchers in order.
    pub fn data_watches_by_path(&self) -> Vec<(String, Vec<WatcherId>)> {
        let mut v: Vec<(String, Vec<WatcherId>)> = self
            .data
            .by_path
            .iter()
            .map(|(p, ws)| {
                let mut ws: Vec<WatcherId> = ws.keys().copied().collect();
                ws.sort_unstable();
                (p.to_string(), ws)
            })
            .collect();
        v.sort_unstable();
        v
    }

    pub fn watcher_count(&self) -> usize {
        let mut ws: HashSet<WatcherId> = self.data.by_watcher.keys().copied().collect();
        ws.extend(self.child.by_watcher.keys());
        ws.len()
    }
}

#[derive(Clone, Copy)]
enum TableSel {
    Data,
    Child,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(p: &str) -> Change {
        Change::Created {
            path: p.into(),
            acl: Arc::from(Vec::new()),
            parent_acl: Arc::from(Vec::new()),
        }
    }
    fn deleted(p: &str) -> Change {
        Change::Deleted {
            path: p.into(),
            acl: Arc::from(Vec::new()),
            parent_acl: Arc::from(Vec::new()),
        }
    }
    fn changed(p: &str) -> Change {
        Change::DataChanged {
            path: p.into(),
            acl: Arc::from(Vec::new()),
        }
    }

    fn fire(m: &mut WatchManager, c: Change) -> Vec<(WatcherId, EventType, String)> {
        let mut out = Vec::new();
        m.trigger(&[c], &mut out);
        out.into_iter()
            .map(|f| (f.watcher, f.event, f.path))
            .collect()
    }

    #[test]
    fn one_shot_watches_fire_once() {
        let mut m = WatchManager::new();
        m.add_data_watch("/a", 1);
        m.add_child_watch("/", 1);
        let ev = fire(&mut m, created("/a"));
        assert_eq!(
            ev,
            vec![
                (1, EventType::NodeCreated, "/a".into()),
                (1, EventType::NodeChildrenChanged, "/".into())
            ]
        );
        assert!(fire(&mut m, changed("/a")).is_empty());
        assert_eq!(m.count(), 0);
    }

    #[test]
    fn delete_reaches_a_watcher_once_through_both_tables() {
        let mut m = WatchManager::new();
        m.add_data_watch("/a", 1);
        m.add_child_watch("/a", 1);
        m.add_child_watch("/a", 2);
        let ev = fire(&mut m, deleted("/a"));
        assert_eq!(
            ev,
            vec![
                (1, EventType::NodeDeleted, "/a".into()),
                (2, EventType::NodeDeleted, "/a".into())
            ]
        );
    }

    #[test]
    fn recursive_watches_see_descendants_but_not_child_lists() {
        let mut m = WatchManager::new();
        m.add_persistent("/a", 7, true);
        let ev = fire(&mut m, created("/a/b/c"));
        assert_eq!(ev, vec![(7, EventType::NodeCreated, "/a/b/c".into())]);
        let ev = fire(&mut m, changed("/a/b"));
        assert_eq!(ev, vec![(7, EventType::NodeDataChanged, "/a/b".into())]);
        assert!(fire(&mut m, changed("/ab")).is_empty());
        assert_eq!(m.count(), 2, "persistent watches stay");
    }

    #[test]
    fn persistent_watch_sees_its_children_change() {
        let mut m = WatchManager::new();
        m.add_persistent("/a", 3, false);
        let ev = fire(&mut m, created("/a/x"));
        assert_eq!(ev, vec![(3, EventType::NodeChildrenChanged, "/a".into())]);
        let ev = fire(&mut m, created("/a/x/y"));
        assert!(ev.is_empty());
        // A standard watch registered over a persistent one turns it one-shot.
        m.add_data_watch("/a", 3);
        assert_eq!(fire(&mut m, changed("/a")).len(), 1);
        assert!(fire(&mut m, changed("/a")).is_empty());
    }

    #[test]
    fn remove_and_disconnect() {
        let mut m = WatchManager::new();
        m.add_data_watch("/a", 1);
        m.add_child_watch("/a", 1);
        assert!(m.contains("/a", WatcherType::Any, 1));
        assert!(m.remove("/a", WatcherType::Data, 1));
        assert!(!m.remove("/a", WatcherType::Data, 1));
        assert!(m.contains("/a", WatcherType::Children, 1));
        m.add_persistent("/", 1, true);
        m.remove_watcher(1);
        assert_eq!(m.count(), 0);
        assert!(fire(&mut m, created("/z")).is_empty());
    }
}
