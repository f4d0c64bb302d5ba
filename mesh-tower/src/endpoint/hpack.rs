//! Header fields whose every value is new: a request's trace context (`traceparent`) and its remaining deadline
//! (`grpc-timeout`, rewritten for each attempt). HPACK (RFC 7541) gains nothing from storing such values in the
//! connection's header table, and storing them costs: each one evicts entries the requests repeat, and h2
//! compares every new value of a name with each stored value of that name (some 40 instructions apiece, with up to
//! 80 of them in a 4 KiB table). So they are marked sensitive where they are written, and h2 sends them as
//! literals never indexed. h2 then stores nothing of them, not even the name, and spells the name out on every
//! request (the peer decodes it, checks it and allocates it) unless the table already holds it: the first value of
//! each such field on a connection goes out indexable ([`UniqueFields::prepare`]), storing the name once, and
//! later values refer to it by index.
//!
//! A connection looks for the fields in its first [`PROBES`] requests only (one relaxed atomic load per request
//! after that): a connection none of whose early requests carries one (no tracer, no deadline) spells the name out
//! if one comes later, as does a connection whose table has since evicted the entry.

use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

use http::{HeaderMap, HeaderName};

use crate::timeout::GRPC_TIMEOUT_NAME;

/// How many fields there are.
const COUNT: usize = 2;
/// The fields, by bit.
const FIELDS: [HeaderName; COUNT] = [HeaderName::from_static("traceparent"), GRPC_TIMEOUT_NAME];
/// Every field's bit.
const ALL: u8 = (1 << COUNT) - 1;
/// How many requests a connection looks in for the fields whose names its table does not hold yet.
pub(crate) const PROBES: u32 = 64;

/// One connection's fields; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct UniqueFields {
    /// Bit `i`: `FIELDS[i]`'s name has gone out indexable.
    taught: AtomicU8,
    /// Requests left to look in.
    probes: AtomicU32,
}

impl Default for UniqueFields {
    fn default() -> Self {
        Self {
            taught: AtomicU8::new(0),
            probes: AtomicU32::new(PROBES),
        }
    }
}

impl UniqueFields {
    /// Lets the first sensitive value of each field on this connection go out indexable.
    pub(crate) fn prepare(&self, headers: &mut HeaderMap) {
        let probes = self.probes.load(Ordering::Relaxed);
        if probes == 0 {
            return;
        }
        // Racy between callers, harmlessly: a request more or less is looked in.
        self.probes.store(probes - 1, Ordering::Relaxed);
        for (bit, name) in FIELDS.iter().enumerate() {
            let mask = 1 << bit;
            if self.taught.load(Ordering::Relaxed) & mask != 0 {
                continue;
            }
            if let Some(value) = headers.get_mut(name)
                && value.is_sensitive()
                && self.taught.fetch_or(mask, Ordering::Relaxed) & mask == 0
            {
                value.set_sensitive(false);
            }
        }
        if self.taught.load(Ordering::Relaxed) == ALL {
            self.probes.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn request(fields: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        for name in fields {
            let mut value = HeaderValue::from_static("unique");
            value.set_sensitive(true);
            headers.insert(*name, value);
        }
        headers
    }

    fn sensitive(headers: &HeaderMap, name: &str) -> bool {
        headers.get(name).is_some_and(HeaderValue::is_sensitive)
    }

    #[test]
    fn the_first_value_of_each_field_goes_out_indexable_and_later_ones_never_indexed() {
        let fields = UniqueFields::default();
        let mut first = request(&["traceparent"]);
        fields.prepare(&mut first);
        assert!(!sensitive(&first, "traceparent"));
        let mut second = request(&["traceparent", "grpc-timeout"]);
        fields.prepare(&mut second);
        assert!(sensitive(&second, "traceparent"));
        assert!(!sensitive(&second, "grpc-timeout"), "its own first");
        let mut third = request(&["traceparent", "grpc-timeout"]);
        fields.prepare(&mut third);
        assert!(sensitive(&third, "traceparent") && sensitive(&third, "grpc-timeout"));
        // Both taught: no more looking.
        assert_eq!(fields.probes.load(Ordering::Relaxed), 0);
        // A field not marked sensitive (an application's own `grpc-timeout`) is left as it is.
        let other = UniqueFields::default();
        let mut plain = request(&[]);
        plain.insert("grpc-timeout", HeaderValue::from_static("1S"));
        other.prepare(&mut plain);
        assert!(!sensitive(&plain, "grpc-timeout"));
        assert_eq!(other.taught.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_connection_stops_looking_after_its_first_requests() {
        let fields = UniqueFields::default();
        for _ in 0..PROBES {
            fields.prepare(&mut request(&[]));
        }
        let mut late = request(&["traceparent"]);
        fields.prepare(&mut late);
        assert!(sensitive(&late, "traceparent"), "not looked at");
    }
}
