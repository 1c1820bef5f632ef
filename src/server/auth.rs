//! Bearer-token authentication: every route but `/healthz` and
//! `/v1/openapi.json` needs
//! `Authorization: Bearer TOKEN` (the scheme in any case) when the server
//! has a token, checked
//! before anything else about the request.

use http::HeaderMap;

use crate::error::{Error, Result};

/// Checks the request's token against the server's, if it has one and
/// the route needs it (`RouteDef::needs_token`).
pub fn check(expected: Option<&str>, needs_token: bool, headers: &HeaderMap) -> Result<()> {
    let Some(expected) = expected.filter(|_| needs_token) else {
        return Ok(());
    };
    let mut all = headers.get_all(http::header::AUTHORIZATION).iter();
    let first = all.next();
    if all.next().is_some() {
        // Which one counts? Taking the first let a request through with a
        // wrong token after a right one, and not the other way round.
        return Err(Error::Unauthorized(
            "Authorization is given more than once; send one Authorization: Bearer TOKEN".into(),
        ));
    }
    let given = first.and_then(|v| v.to_str().ok()).and_then(bearer_token);
    match given {
        None => Err(Error::Unauthorized(
            "this server requires a token: send Authorization: Bearer TOKEN (with kvr: \
             --token, --token-file or KVR_TOKEN)"
                .into(),
        )),
        Some(t) if same(t.trim().as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(Error::Unauthorized(
            "the server did not accept the token; check --token, --token-file or KVR_TOKEN (or \
             the Authorization: Bearer header sent)"
                .into(),
        )),
    }
}

/// The token of `Bearer TOKEN`; the scheme is case-insensitive (RFC 9110
/// section 11.1), so `bearer` and `BEARER` work too.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case("bearer ").then_some(token)
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell how much of a guess was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue, header};
    use proptest::prelude::*;

    use super::check;
    use crate::error::Error;

    proptest! {
        /// Any `Authorization` bytes: accepted exactly when they are
        /// `Bearer TOKEN` (the scheme in any case, surrounding spaces
        /// aside), otherwise 401; never a
        /// panic, and `/healthz` never asks.
        #[test]
        fn any_authorization_header_is_accepted_only_with_the_token(
            value in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..40),
                "[bB][eE][aA][rR][eE][rR] {1,2}s3cre[tx] ?".prop_map(String::into_bytes),
            ],
        ) {
            let Ok(v) = HeaderValue::from_bytes(&value) else { return Ok(()) };
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, v);
            let exact = value.len() > 7
                && value[..7].eq_ignore_ascii_case(b"bearer ")
                && value[7..].trim_ascii() == b"s3cret";
            match check(Some("s3cret"), true, &headers) {
                Ok(()) => prop_assert!(exact),
                Err(e) => {
                    let unauthorized = matches!(e, Error::Unauthorized(_));
                    prop_assert!(unauthorized && !exact);
                }
            }
            prop_assert!(check(Some("s3cret"), false, &headers).is_ok());
        }
    }

    /// Two `Authorization` headers are refused in either order, even both
    /// right: which one counts would be a guess.
    #[test]
    fn two_authorization_headers_are_refused_in_any_order() {
        let (right, wrong) = ("Bearer s3cret", "Bearer nope");
        for pair in [[right, wrong], [wrong, right], [right, right]] {
            let mut headers = HeaderMap::new();
            for v in pair {
                headers.append(header::AUTHORIZATION, HeaderValue::from_static(v));
            }
            let refused = check(Some("s3cret"), true, &headers);
            assert!(
                matches!(&refused, Err(Error::Unauthorized(m)) if m.contains("more than once")),
                "{pair:?}: {refused:?}"
            );
            assert!(check(Some("s3cret"), false, &headers).is_ok());
        }
    }
}
