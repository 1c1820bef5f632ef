//! [`App::receive`]: the answers of the source, turned into state. Every
//! failure ends up on the status line (and the value pane, for a read), so a
//! source that fails or goes away leaves a usable screen.

use super::app::{App, Intent, Meanwhile, Mode, ValueState};
use super::filter::Filter;
use super::keys::display_key;
use super::preview::preview;
use super::worker::{KeysTag, Purpose, Response};
use crate::error::Error;
use crate::types::Entry;

impl App {
    /// Applies one answer of the worker.
    pub fn receive(&mut self, response: Response) {
        match response {
            Response::Stats(result) => {
                match result {
                    Ok(stats) => {
                        self.stats = Some(stats);
                        self.read_worked();
                    }
                    Err(e) => {
                        // No feed starts before a first stats read, and a
                        // refused token or certificate will not come right
                        // by itself: the feed is not "connecting" (it said
                        // so for ever; found by an audit).
                        if let (Error::Unauthorized(_) | Error::Tls(_), Some(live)) =
                            (&e, &mut self.live)
                            && live.link == crate::tui::live::Link::Connecting
                        {
                            live.link = crate::tui::live::Link::Failed(e.to_string());
                        }
                        self.read_error(format!("cannot read stats: {e}"));
                    }
                }
                self.counts_answered();
            }
            Response::NextExpiry(at) => self.next_expiry_ms = at,
            Response::Keys { tag, result } => match result {
                Ok(keys) => {
                    self.keys_error = None;
                    self.read_worked();
                    self.seek_landed(tag, keys.first());
                    self.reload_landed(tag, keys.first());
                    let rows = self.rows();
                    let next = self.pager.receive(tag, keys, rows);
                    self.outbox.extend(next);
                    self.sync_value();
                }
                Err(e) => self.keys_failed(tag, e),
            },
            Response::Scanned { tag, result } => match result {
                Ok(step) => {
                    self.keys_error = None;
                    self.read_worked();
                    if self.pager.lands(tag, &step) {
                        self.seek_landed(tag, step.keys.first());
                        self.reload_landed(tag, step.keys.first());
                    }
                    let rows = self.rows();
                    let next = self.pager.receive_scan(tag, step, rows);
                    self.outbox.extend(next);
                    // Not while a jump has placed nothing yet: the key
                    // shown stays until the selection moves.
                    if !self.pager.jumping {
                        self.sync_value();
                    }
                }
                Err(e) => self.keys_failed(tag, e),
            },
            Response::Value { key, result } => self.value_arrived(key, result),
            Response::Probe { key, result } => self.probed(key, result),
            Response::Current { key, result } => self.conflict_read(key, result),
            Response::Count { prefix, result } => match result {
                Ok(counted) if self.pager.filter == Some(Filter::Prefix(prefix)) => {
                    self.matched = Some(counted);
                }
                Ok(_) => {}
                Err(e) => self.read_error(format!("cannot count the keys: {e}")),
            },
            Response::Counted { id, result } => self.counted(id, result),
            Response::Put {
                key,
                created,
                result,
            } => self.put_done(key, created, result),
            Response::Deleted { key, result } => self.delete_done(key, result),
            Response::Skipped | Response::Released => {}
            Response::Crashed(message) => {
                // Its message went to stderr, over the screen.
                self.redraw = true;
                if self.pager.read_failed() {
                    self.sync_value();
                }
                self.error(format!(
                    "internal error in the source (a bug; please report it): {message}"
                ));
            }
        }
    }

    /// A read of keys failed: see [`super::pager::Pager::read_failed`].
    fn keys_failed(&mut self, tag: KeysTag, e: Error) {
        if tag.generation == self.pager.generation {
            // The keys may go with it (see there), and their value.
            if self.pager.read_failed() {
                self.sync_value();
            }
        }
        self.keys_error = Some(match e {
            Error::Unavailable {
                overloaded: false, ..
            } => "cannot reach the server".to_string(),
            _ => "cannot read the keys".to_string(),
        });
        self.read_error(format!("cannot read keys: {e}"));
    }

    /// Says where a seek the user typed landed, when not on its key: on
    /// the next key, or (past the last key) nowhere, so the last is shown.
    fn seek_landed(&mut self, tag: KeysTag, first: Option<&Vec<u8>>) {
        let Some((generation, target)) = &self.seek else {
            return;
        };
        if tag.generation != *generation || tag.purpose != Purpose::Seek {
            return;
        }
        let filter = self.pager.filter.as_ref();
        let kept = self.pager.upto.is_some();
        // Known to hold no key at all (the filter's, or the whole store).
        let none = match filter {
            None => self.stats.as_ref().is_some_and(|s| s.keys == 0),
            Some(_) => self.matched.is_some_and(|(n, _)| n == 0),
        };
        if let Some(message) = super::scanning::seek_message(filter, target, first, kept, none) {
            self.info(message);
        }
        self.seek = None;
    }

    fn value_arrived(&mut self, key: Vec<u8>, result: crate::Result<Option<Entry>>) {
        if self.value.key.as_deref() != Some(key.as_slice()) {
            return;
        }
        if result.is_ok() {
            self.read_worked();
        }
        self.value.state = match result {
            Ok(Some(entry)) => ValueState::Loaded {
                revision: entry.revision,
                expires_at_ms: entry.expires_at_ms,
                preview: preview(&entry.value, self.config.theme),
                bytes: entry.value,
            },
            Ok(None) => ValueState::Missing,
            Err(e) => {
                let text = format!("cannot read {}: {e}", display_key(&key));
                self.read_error(text.clone());
                ValueState::Failed(text)
            }
        };
        // A delete dialog open on the key says it changed meanwhile; `y`
        // still deletes only the revision asked about (a change that lands
        // as `y` is pressed must not be deleted unseen).
        if let Mode::Confirm {
            key: asked,
            revision,
            now,
            expires_at_ms,
        } = &mut self.mode
            && *asked == key
        {
            *now = match &self.value.state {
                ValueState::Loaded { revision: new, .. } => {
                    (*new != *revision).then_some(Meanwhile::Changed(*new))
                }
                ValueState::Missing => Some(Meanwhile::Deleted {
                    expired: expires_at_ms.is_some_and(|at| at <= crate::types::now_ms()),
                }),
                _ => *now,
            };
        }
        self.resume_intent(&key);
    }

    /// Goes ahead with an edit or delete asked for while `key` loaded.
    fn resume_intent(&mut self, key: &[u8]) {
        let Some((wanted, intent)) = self.intent.take() else {
            return;
        };
        if wanted != key || self.mode != Mode::Browse {
            return;
        }
        match intent {
            Intent::Edit => self.start_edit(),
            Intent::Delete => self.ask_delete(),
        }
    }

    fn put_done(&mut self, key: Vec<u8>, created: bool, result: crate::Result<u64>) {
        let shown = display_key(&key);
        // Only this key's: a save of another key may be out too.
        let saving = match &self.saving {
            Some(job) if job.key == key => self.saving.take(),
            _ => None,
        };
        // `q` was pressed while this save was out: it waited for it.
        let quitting = saving.is_some() && std::mem::take(&mut self.quit_when_saved);
        if quitting {
            // A first `q` armed for the wait is not a yes to dropping text.
            self.quit_armed = false;
            self.quit = result.is_ok();
        }
        match result {
            Ok(revision) => {
                // A save is a put without a TTL: say so when it took one.
                let expiry = saving.as_ref().and_then(|job| job.expires_at_ms);
                let note = match expiry {
                    Some(_) => "; its expiry was removed",
                    None => "",
                };
                // Past the keys the list keeps to after a stop, the new
                // key is not shown: say why.
                let past = match created && self.pager.beyond(&key) {
                    true => "; it is past the keys read before the stop (r reads on)",
                    false => "",
                };
                self.info(format!("saved {shown} (revision {revision}){note}{past}"));
                self.request_counts();
                let shown_here = self.value.key.as_deref() == Some(key.as_slice());
                if shown_here {
                    // Read again (a key written as new may be the one
                    // shown: it had expired, or someone deleted it).
                    self.value.key = None;
                }
                if created {
                    // The stopped count follows the list (see `list_change`).
                    if self.pager.upto.is_some() {
                        self.list_change(&key, false);
                    }
                    // Show the new key in the list, selected.
                    let jump = self.pager.jump_top(Some(key));
                    self.outbox.push(jump);
                } else if shown_here {
                    self.sync_value();
                }
            }
            // The key changed since the edit began: the text is kept.
            Err(Error::PreconditionFailed { current, .. }) => match saving {
                Some(job) => self.save_conflict(job, current),
                None if created => {
                    let now = current.map_or(String::new(), |r| format!(" (revision {r})"));
                    self.error(format!("{shown} already exists{now}; nothing written"));
                }
                None => self.error(format!(
                    "{shown} was changed by someone else ({}); nothing written",
                    now_state(current)
                )),
            },
            Err(e) => {
                let why = format!("cannot save {shown}: {e}");
                match saving {
                    Some(job) => self.keep_editing(job, why),
                    None => self.error(why),
                }
            }
        }
        if quitting && !self.quit {
            let why = std::mem::take(&mut self.status.text);
            self.error(format!("not quitting: {why}"));
        }
    }

    fn delete_done(&mut self, key: Vec<u8>, result: crate::Result<u64>) {
        let shown = display_key(&key);
        // Gone after its expiry passed: it expired rather than being
        // deleted by someone (as for an edit, above).
        let expired = self
            .own_delete
            .as_ref()
            .filter(|d| d.key == key)
            .and_then(|d| d.expires_at_ms)
            .is_some_and(|at| at <= crate::types::now_ms());
        match result {
            Ok(revision) => self.info(format!("deleted {shown} (revision {revision})")),
            Err(Error::PreconditionFailed { current: None, .. } | Error::KeyNotFound { .. })
                if expired =>
            {
                self.own_delete = None;
                self.info(format!("{shown} had already expired"));
            }
            Err(Error::PreconditionFailed {
                current: current @ Some(_),
                ..
            }) => {
                self.own_delete = None;
                // Read again, so that `d` asks about what is there now: on a
                // file nothing else would, and `d` asked about the revision
                // it had shown, to be refused again (found by an audit).
                // At this key: deleted and made again meanwhile, it had left
                // the list, and `d` asked about the key after it (found by
                // another).
                self.reread_at(Some(key.clone()));
                return self.error(format!(
                    "{shown} was changed by someone else ({}); not deleted: d asks again",
                    now_state(current)
                ));
            }
            // Deleted meanwhile: gone as if this delete had done it.
            Err(Error::PreconditionFailed { current: None, .. } | Error::KeyNotFound { .. }) => {
                self.error(format!("{shown} was already deleted by someone else"));
            }
            Err(e) => {
                self.own_delete = None;
                return self.error(format!("cannot delete {shown}: {e}"));
            }
        }
        // The key is gone: select the one after it, on the same row.
        if self.pager.upto.is_some() {
            self.list_change(&key, true);
        }
        self.request_counts();
        let jump = self.pager.reload_at(Some(key));
        self.outbox.push(jump);
    }
}

fn now_state(current: Option<u64>) -> String {
    match current {
        Some(r) => format!("now at revision {r}"),
        None => "now deleted".to_string(),
    }
}
