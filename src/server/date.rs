//! The clock as HTTP dates say it. They cover 1970 to 9999, and hyper
//! formats its `Date` header with a panic outside that range, on every
//! request (found by an audit: a server started with its clock before
//! 1970 said it was serving and cut every connection, `/healthz` too,
//! saying nothing of the clock). So `serve` refuses to start with such a
//! clock ([`check_clock`]), and kvr's own answers written beside hyper
//! leave the header out where it cannot be said ([`now`]).

use std::time::{SystemTime, UNIX_EPOCH};

/// 10000-01-01T00:00:00Z, in seconds since 1970: HTTP dates end before it.
const YEAR_10000_SECS: u64 = 253_402_300_800;

/// The `Date` header's value for now, or `None` when the clock reads
/// outside the range HTTP dates cover (RFC 9110 6.6.1 lets a server
/// without a usable clock leave it out).
pub fn now() -> Option<String> {
    let now = SystemTime::now();
    http_secs(now).map(|_| httpdate::fmt_http_date(now))
}

/// Why the clock will not do, when it reads outside the range of HTTP
/// dates.
pub fn check_clock() -> Result<(), String> {
    let now = SystemTime::now();
    if http_secs(now).is_some() {
        return Ok(());
    }
    let (when, way) = match now.duration_since(UNIX_EPOCH) {
        Ok(_) => ("in the year 10000 or later", "back"),
        Err(_) => ("before 1970", "forward"),
    };
    Err(format!(
        "this machine's clock reads {when}: kvr serve needs a clock between 1970 and 9999 \
         (the dates of its HTTP answers, and expiry); set the clock {way} (NTP), then start \
         it again"
    ))
}

/// `t` in whole seconds since 1970, when an HTTP date can say it.
fn http_secs(t: SystemTime) -> Option<u64> {
    let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
    (secs < YEAR_10000_SECS).then_some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_times_an_http_date_can_say_are_taken() {
        assert_eq!(http_secs(UNIX_EPOCH), Some(0));
        assert_eq!(http_secs(UNIX_EPOCH - Duration::from_secs(1)), None);
        let last = UNIX_EPOCH + Duration::from_secs(YEAR_10000_SECS - 1);
        assert_eq!(http_secs(last), Some(YEAR_10000_SECS - 1));
        assert_eq!(
            httpdate::fmt_http_date(last),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
        assert_eq!(http_secs(last + Duration::from_secs(1)), None);
        assert!(now().unwrap().ends_with(" GMT"));
        check_clock().unwrap();
    }
}
