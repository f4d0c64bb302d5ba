//! Server listeners: addresses, TLS and RBAC.

use std::collections::HashMap;

use super::{Checker, parse_address};
use crate::mesh::server::{Permission, Principal, Rbac, ServerListener};

pub(super) fn check_server(checker: &mut Checker, path: &str, server: &ServerListener) {
    if let Err(message) = parse_address(&server.listening_address) {
        checker.error(format!("{path}.listening_address"), message);
    }
    if let Some(name) = &server.name {
        checker.non_empty(&format!("{path}.name"), name);
    }
    if let Some(tls) = &server.tls {
        checker.non_empty(
            &format!("{path}.tls.certificate_provider"),
            &tls.certificate_provider,
        );
        match &tls.ca_certificate_provider {
            Some(provider) => {
                checker.non_empty(&format!("{path}.tls.ca_certificate_provider"), provider);
            }
            None if tls.require_client_certificate => checker.error(
                format!("{path}.tls.ca_certificate_provider"),
                "required when require_client_certificate is true",
            ),
            None => {}
        }
    }
    if let Some(rbac) = &server.rbac {
        check_rbac(checker, &format!("{path}.rbac"), rbac);
    }
}

fn check_rbac(checker: &mut Checker, path: &str, rbac: &Rbac) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (index, policy) in rbac.policies.iter().enumerate() {
        let policy_path = format!("{path}.policies[{index}]");
        checker.non_empty(&format!("{policy_path}.name"), &policy.name);
        if let Some(previous) = names.insert(policy.name.as_str(), index) {
            checker.error(
                format!("{policy_path}.name"),
                format!(
                    "duplicate policy name {:?} (also policies[{previous}])",
                    policy.name
                ),
            );
        }
        if policy.permissions.is_empty() {
            checker.error(
                format!("{policy_path}.permissions"),
                "at least one permission is required",
            );
        }
        if policy.principals.is_empty() {
            checker.error(
                format!("{policy_path}.principals"),
                "at least one principal is required",
            );
        }
        for (rule, permission) in policy.permissions.iter().enumerate() {
            check_permission(
                checker,
                &format!("{policy_path}.permissions[{rule}]"),
                permission,
            );
        }
        for (rule, principal) in policy.principals.iter().enumerate() {
            check_principal(
                checker,
                &format!("{policy_path}.principals[{rule}]"),
                principal,
            );
        }
    }
}

fn check_permission(checker: &mut Checker, path: &str, permission: &Permission) {
    match permission {
        Permission::Any => {}
        Permission::Path(matcher) => checker.string_match(&format!("{path}.path"), matcher),
        Permission::Header(header) => checker.header(&format!("{path}.header"), header),
        Permission::DestinationPort(port) => {
            if *port == 0 || *port > 65_535 {
                checker.error(
                    format!("{path}.destination_port"),
                    format!("must be 1-65535, got {port}"),
                );
            }
        }
        Permission::Not(inner) => check_permission(checker, &format!("{path}.not"), inner),
    }
}

fn check_principal(checker: &mut Checker, path: &str, principal: &Principal) {
    match principal {
        Principal::Any => {}
        Principal::Authenticated(authenticated) => {
            if let Some(matcher) = &authenticated.principal_name {
                checker.string_match(&format!("{path}.authenticated.principal_name"), matcher);
            }
        }
        Principal::Header(header) => checker.header(&format!("{path}.header"), header),
        Principal::Path(matcher) => checker.string_match(&format!("{path}.path"), matcher),
        Principal::Not(inner) => check_principal(checker, &format!("{path}.not"), inner),
    }
}
