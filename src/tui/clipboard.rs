//! Copying the selected key or value to the clipboard with OSC 52: an
//! escape sequence that asks the terminal itself to set its clipboard, so it
//! works over ssh and inside tmux (with `set-clipboard on`), with no
//! clipboard tool on the machine kvr runs on. A terminal that does not
//! support it ignores the sequence; kvr cannot tell, so the status line
//! says the text was sent rather than copied.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::action::Copy;
use super::app::{App, ValueState};
use super::keys::display_key;
use super::preview::{Kind, classify, human_bytes};

/// Largest value copied. Terminals cap OSC 52 (xterm, hterm and others at
/// around 100,000 bytes of base64, which 74 KiB of text becomes); beyond
/// that they drop the sequence without a word.
pub const COPY_MAX_BYTES: usize = 74 << 10;

/// The escape sequence that puts `bytes` on the clipboard (`c`).
pub fn osc52(bytes: &[u8]) -> String {
    format!("\x1b]52;c;{}\x07", B64.encode(bytes))
}

impl App {
    /// `y` / `Y`: queues the key or the value for the run loop to send.
    pub(super) fn copy(&mut self, what: Copy) {
        let Some(key) = self.pager.current().map(<[u8]>::to_vec) else {
            return self.info("no key selected");
        };
        let shown = display_key(&key);
        match what {
            // A key that is not UTF-8 goes as it is shown: its escapes can
            // be pasted into a prompt, raw bytes nowhere.
            Copy::Key if std::str::from_utf8(&key).is_err() => {
                self.send(shown.clone().into_bytes());
                self.info(format!(
                    "sent the key {shown} (as shown, it is not UTF-8) to the clipboard"
                ));
            }
            Copy::Key => {
                self.send(key);
                self.info(format!("sent the key {shown} to the clipboard"));
            }
            Copy::Value => self.copy_value(&key, &shown),
        }
    }

    fn copy_value(&mut self, key: &[u8], shown: &str) {
        let bytes = match &self.value.state {
            ValueState::Loaded { bytes, .. } if self.value.key.as_deref() == Some(key) => bytes,
            ValueState::Loading => return self.info("the value is still loading; try again"),
            _ => return self.info("no value to copy"),
        };
        if classify(bytes) == Kind::Binary {
            return self.error(format!(
                "the value of {shown} is binary: the clipboard takes text (use kvr get)"
            ));
        }
        if bytes.len() > COPY_MAX_BYTES {
            return self.error(format!(
                "the value of {shown} is {}, too large for the terminal's clipboard (at most {}; use kvr get)",
                human_bytes(bytes.len()),
                human_bytes(COPY_MAX_BYTES)
            ));
        }
        let text = format!(
            "sent the value of {shown} ({}) to the clipboard",
            human_bytes(bytes.len())
        );
        self.send(bytes.clone());
        self.info(text);
    }

    fn send(&mut self, bytes: Vec<u8>) {
        self.clipboard = Some(bytes);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn osc52_is_base64_in_the_escape() {
        assert_eq!(super::osc52(b"key:1"), "\x1b]52;c;a2V5OjE=\x07");
    }
}
