//! A `tracing` subscriber that keeps the authorization audit events (target `mesh::authz::audit`) and nothing else,
//! installed for the current thread (the tests run on a current-thread runtime, so the server's tasks log into it).

use std::fmt;
use std::sync::{Arc, Mutex};

use mesh_tower::authz::AUDIT_TARGET;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::DefaultGuard;
use tracing::{Event, Metadata, Subscriber};

/// The fields of one audit event (gRFC A59's audit context).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct AuditEvent {
    pub(crate) policy_name: String,
    pub(crate) matched_rule: String,
    pub(crate) principal: String,
    pub(crate) rpc_method: String,
    pub(crate) authorized: bool,
}

/// The events captured so far.
#[derive(Debug, Default, Clone)]
pub(crate) struct Captured(Arc<Mutex<Vec<AuditEvent>>>);

impl Captured {
    pub(crate) fn take(&self) -> Vec<AuditEvent> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Starts capturing on this thread until the guard drops.
pub(crate) fn capture_audit() -> (Captured, DefaultGuard) {
    let captured = Captured::default();
    let guard = tracing::subscriber::set_default(AuditSubscriber(captured.clone()));
    (captured, guard)
}

struct AuditSubscriber(Captured);

impl Subscriber for AuditSubscriber {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == AUDIT_TARGET
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = AuditEvent::default();
        event.record(&mut fields);
        self.0.0.lock().unwrap().push(fields);
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

impl Visit for AuditEvent {
    fn record_str(&mut self, field: &Field, value: &str) {
        let slot = match field.name() {
            "policy_name" => &mut self.policy_name,
            "matched_rule" => &mut self.matched_rule,
            "principal" => &mut self.principal,
            "rpc_method" => &mut self.rpc_method,
            _ => return,
        };
        value.clone_into(slot);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "authorized" {
            self.authorized = value;
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn fmt::Debug) {}
}
