//! [`App::follow`]: what the live feed (`live.rs`) saw, turned into state.
//! The key list is patched in place (no read), the open value is read
//! again when its key changed, and the counts are read again, at most one
//! such read at a time however many changes come.

use super::app::{App, Meanwhile, Mode, ValueState};
use super::keys::display_key;
use super::live::{Change, Inbox, Link};
use super::worker::{KeysTag, Purpose, Request};

/// The live feed's state, for the status bar.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveStatus {
    pub link: Link,
    /// Changes seen since the browser started.
    pub seen: u64,
}

impl LiveStatus {
    /// The status bar's part: `live · 3 changes`.
    pub fn text(&self) -> String {
        let n = self.seen;
        match &self.link {
            Link::Connecting => "live: connecting…".to_string(),
            Link::Live if n == 1 => "live · 1 change".to_string(),
            Link::Live => format!("live · {} changes", super::view::thousands(n)),
            Link::Reconnecting(_) => "live: reconnecting…".to_string(),
            Link::Failed(_) => "not live".to_string(),
        }
    }
}

/// Deletes of the selected key this close together are one burst (see
/// `App::deleted_open`).
const BURST_MS: u64 = 2_000;

impl App {
    /// Applies what the feed saw since the last call.
    pub fn follow(&mut self, inbox: Inbox) {
        let was = self.live.as_ref().map(|l| l.link.clone());
        if let Link::Failed(why) = &inbox.link
            && was.as_ref() != Some(&inbox.link)
        {
            self.error(format!("not following changes any more: {why}"));
        }
        // Back from reconnecting after reads failed: read the screen again,
        // which also clears their error once it works. A failed read of
        // keys counts even when a later message took its error's place.
        let back = inbox.link == Link::Live && was.is_some_and(|w| w != Link::Live);
        if back && (self.status.read_failed || self.keys_error.is_some()) {
            self.reread();
        }
        self.live = Some(LiveStatus {
            link: inbox.link,
            seen: inbox.seen,
        });
        if let Some(stats) = &mut self.stats {
            stats.revision = stats.revision.max(inbox.revision);
        }
        self.conflict_changed(inbox.reload, &inbox.changes);
        if inbox.reload {
            return self.reload_view();
        }
        if inbox.changes.is_empty() {
            return;
        }
        let reread = self.apply_changes(&inbox.changes);
        self.after_change();
        if reread && self.pager.current() == self.value.key.as_deref() {
            self.reread_value();
        }
        // A read for the key after a deleted one is out: the key the cursor
        // fell back on meanwhile is not worth reading.
        if !self.pager.jumping {
            self.sync_value();
        }
        self.live_counts();
    }

    /// Patches the key list; returns whether the open value was put anew.
    /// A delete of the open key is said on the status line, unless this
    /// browser asked for it.
    fn apply_changes(&mut self, changes: &[Change]) -> bool {
        let open = self.value.key.clone();
        let mut reread = false;
        for change in changes {
            self.list_change(&change.key, change.deleted);
            self.confirm_meanwhile(change);
            let ours = change.deleted
                && self
                    .own_delete
                    .as_ref()
                    .is_some_and(|d| d.key == change.key);
            if ours {
                self.own_delete = None;
            }
            if open.as_deref() != Some(change.key.as_slice()) {
                continue;
            }
            reread = !change.deleted;
            if change.deleted && !ours {
                let how = if change.expired {
                    "expired"
                } else {
                    "was deleted elsewhere"
                };
                self.say_open_deleted(&change.key, how);
            }
        }
        reread
    }

    /// A delete dialog open on the changed key says what became of it:
    /// a delete moves the cursor on, so the value pane behind no longer
    /// shows that key, and `y` would only be refused.
    fn confirm_meanwhile(&mut self, change: &Change) {
        let Mode::Confirm {
            key, revision, now, ..
        } = &mut self.mode
        else {
            return;
        };
        if *key != change.key {
            return;
        }
        *now = if change.deleted {
            Some(Meanwhile::Deleted {
                expired: change.expired,
            })
        } else {
            (change.revision != *revision).then_some(Meanwhile::Changed(change.revision))
        };
    }

    /// Keeps the window filled after keys went: more keys past an edge
    /// that came close, or a new read when none is left.
    fn after_change(&mut self) {
        if let Some(key) = self.pager.lost.take() {
            // The selected key went, and the keys after it with the rest of
            // the window: read on from it, landing on the next key.
            let jump = self.pager.reload_at(Some(key));
            self.outbox.push(jump);
        } else if self.pager.keys.is_empty() && !(self.pager.head_done && self.pager.tail_done) {
            // Only keys before the ones that went are left: the last ones.
            let jump = self.pager.jump_bottom();
            self.outbox.push(jump);
        } else {
            let more = self.pager.extend();
            self.outbox.extend(more);
        }
    }

    /// Reads the open value again, showing the old one until the new one
    /// arrives (and keeping the scroll position).
    fn reread_value(&mut self) {
        if let Some(key) = self.value.key.clone() {
            if !matches!(self.value.state, ValueState::Loaded { .. }) {
                self.value.state = ValueState::Loading;
            }
            self.outbox.push(Request::Get { key });
        }
    }

    /// More changes came than the feed holds: read the page, the value and
    /// the counts again, which covers them all.
    fn reload_view(&mut self) {
        let current = self.pager.current().map(<[u8]>::to_vec);
        let jump = self.pager.reload_at(current.clone());
        self.outbox.push(jump);
        // The changes were not kept: the answer tells whether the selected
        // key was among them (it lands past it).
        self.reloaded_at = current.map(|key| (self.pager.generation, key));
        self.reread_value();
        self.live_counts();
    }

    /// Asks for the counts, unless such a read is out already: then once
    /// more when it comes back.
    fn live_counts(&mut self) {
        if self.counts_busy {
            self.counts_again = true;
        } else {
            self.counts_busy = true;
            self.request_counts();
        }
    }

    /// The answer to [`App::reload_view`] came: when it did not land on
    /// the selected key, that key went in the burst, which the status line
    /// says as it says a single delete.
    pub(super) fn reload_landed(&mut self, tag: KeysTag, first: Option<&Vec<u8>>) {
        let Some((generation, key)) = &self.reloaded_at else {
            return;
        };
        if tag.generation != *generation || tag.purpose != Purpose::Seek {
            return;
        }
        if first != Some(key) {
            let ours = self.own_delete.as_ref().is_some_and(|d| d.key == *key);
            if !ours {
                let (key, how) = (key.clone(), self.gone_how(key));
                self.say_open_deleted(&key, how);
            }
        }
        self.reloaded_at = None;
    }

    /// Says on the status line that the selected key `key` went (`how`),
    /// naming the key the user was on when a burst of deletes (one within
    /// [`BURST_MS`] of the one before) takes the key the cursor moved on
    /// to as well; a delete after a quiet spell names its own key.
    fn say_open_deleted(&mut self, key: &[u8], how: &str) {
        let now = crate::types::now_ms();
        let name = match self.deleted_open.take() {
            Some((name, at)) if now.saturating_sub(at) < BURST_MS => name,
            _ => key.to_vec(),
        };
        self.info(format!("{} {how}", display_key(&name)));
        self.deleted_open = Some((name, now));
    }

    /// How the open key `key` went, when the feed did not say: it expired
    /// if its expiry has passed, else someone deleted it.
    fn gone_how(&self, key: &[u8]) -> &'static str {
        let expired = match (&self.value.key, &self.value.state) {
            (
                Some(open),
                ValueState::Loaded {
                    expires_at_ms: Some(at),
                    ..
                },
            ) => open == key && *at <= crate::types::now_ms(),
            _ => false,
        };
        if expired {
            "expired"
        } else {
            "was deleted elsewhere"
        }
    }

    /// A stats answer came: the next coalesced counts read may go.
    pub(super) fn counts_answered(&mut self) {
        if std::mem::take(&mut self.counts_busy) && std::mem::take(&mut self.counts_again) {
            self.live_counts();
        }
    }
}
