//! `transport_socket` to upstream TLS (gRFC A29, A101 for SNI).
//!
//! Certificates come only from certificate provider instances named in the bootstrap (A29): our identity from
//! `tls_certificate_provider_instance`, trust roots from the validation context's `ca_certificate_provider_instance`
//! (or the platform roots with `system_root_certs`). The rule for everything else: a field that would make the peer
//! check *stricter* than what we can do (pinning, CRLs, typed SAN matchers, SCTs, a custom validator, a depth limit,
//! SNI-based SAN validation) or that supplies key material another way (inline, SDS) is NACKed, because ignoring it
//! would trust more than the control plane asked; a field whose only effect is to relax checks or tune the
//! handshake (`allow_expired_certificate`, `trust_chain_verification`, `tls_params`, ALPN, renegotiation, session
//! keys, `auto_host_sni`) is ignored, as gRPC ignores it, which can only fail closed.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::{
    CertificateProviderInstance as LegacyInstance, ValidationContextType,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateProviderPluginInstance, CertificateValidationContext, CommonTlsContext,
    UpstreamTlsContext,
};
use mesh_core::tls::{CertificateProviderInstance, CertificateValidation, UpstreamTls};
use prost::Message as _;

use super::any_is;
use crate::resource::ValidationContext;
use crate::resource::common::{Errors, string_matcher};

/// RFC 6066 / Envoy's `tls.proto` (and gRFC A101): an SNI is at most 255 bytes.
const MAX_SNI_LEN: usize = 255;

/// The TLS settings of `transport_socket`; `None` for plaintext (and on error, with the problem recorded).
pub(super) fn transport_socket(
    socket: &TransportSocket,
    ctx: &ValidationContext,
    errors: &mut Errors,
) -> Option<UpstreamTls> {
    let Some(ConfigType::TypedConfig(any)) = &socket.config_type else {
        errors.push("typed_config", "field not present");
        return None;
    };
    // Envoy picks the transport socket by the config's type, not by `name`.
    if any_is::<RawBuffer>(any) {
        // Envoy's plaintext socket: the same as no transport socket (gRFC A29's plaintext fallback).
        return None;
    }
    if !any_is::<UpstreamTlsContext>(any) {
        errors.push(
            "typed_config",
            format!(
                "transport socket {:?} ({}) is not supported",
                socket.name, any.type_url
            ),
        );
        return None;
    }
    let context = match UpstreamTlsContext::decode(any.value.as_slice()) {
        Ok(context) => context,
        Err(e) => {
            errors.push(
                "typed_config",
                format!("cannot decode UpstreamTlsContext: {e}"),
            );
            return None;
        }
    };
    errors.at("typed_config", |e| upstream_tls_context(&context, ctx, e))
}

fn upstream_tls_context(
    context: &UpstreamTlsContext,
    ctx: &ValidationContext,
    errors: &mut Errors,
) -> Option<UpstreamTls> {
    let problems_before = errors.len();
    // gRFC A101: the SNI is honoured and bounded like Envoy bounds it.
    if context.sni.len() > MAX_SNI_LEN {
        errors.push(
            "sni",
            format!(
                "must be at most {MAX_SNI_LEN} bytes, got {}",
                context.sni.len()
            ),
        );
    }
    // gRFC A101: this replaces `match_subject_alt_names` by a check against the SNI, which the model cannot express;
    // ignoring it would accept certificates the control plane meant to reject.
    if context.auto_sni_san_validation {
        errors.push("auto_sni_san_validation", "is not supported");
    }
    let Some(common) = &context.common_tls_context else {
        errors.push("common_tls_context", "field not present");
        return None;
    };
    let tls = errors.at("common_tls_context", |e| common_tls_context(common, ctx, e));
    let sni: Option<Arc<str>> = (!context.sni.is_empty()).then(|| context.sni.as_str().into());
    tls.filter(|_| errors.len() == problems_before)
        .map(|tls| tls.with_sni(sni))
}

// The deprecated certificate-provider fields are what older control planes (and gRFC A29's text) use.
#[allow(deprecated)]
fn common_tls_context(
    common: &CommonTlsContext,
    ctx: &ValidationContext,
    errors: &mut Errors,
) -> Option<UpstreamTls> {
    let problems_before = errors.len();
    if !common.tls_certificates.is_empty() {
        errors.push(
            "tls_certificates",
            "is not supported, use tls_certificate_provider_instance",
        );
    }
    if !common.tls_certificate_sds_secret_configs.is_empty() {
        errors.push("tls_certificate_sds_secret_configs", "SDS is not supported");
    }
    if common.tls_certificate_certificate_provider.is_some() {
        errors.push("tls_certificate_certificate_provider", "is not supported");
    }
    if common.custom_tls_certificate_selector.is_some() {
        errors.push("custom_tls_certificate_selector", "is not supported");
    }
    if common.custom_handshaker.is_some() {
        errors.push("custom_handshaker", "is not supported");
    }

    // Our certificate, for mutual TLS; the deprecated field still works when the new one is absent.
    let identity = if let Some(instance) = &common.tls_certificate_provider_instance {
        plugin_instance(instance, "tls_certificate_provider_instance", ctx, errors)
    } else if let Some(instance) = &common.tls_certificate_certificate_provider_instance {
        legacy_instance(
            instance,
            "tls_certificate_certificate_provider_instance",
            ctx,
            errors,
        )
    } else {
        None
    };

    let validation = match &common.validation_context_type {
        Some(ValidationContextType::ValidationContext(context)) => errors
            .at("validation_context", |e| {
                validation_context(context, ctx, e)
            }),
        Some(ValidationContextType::CombinedValidationContext(combined)) => {
            errors.at("combined_validation_context", |e| {
                if combined.validation_context_sds_secret_config.is_some() {
                    e.push(
                        "validation_context_sds_secret_config",
                        "SDS is not supported",
                    );
                }
                if combined.validation_context_certificate_provider.is_some() {
                    e.push(
                        "validation_context_certificate_provider",
                        "is not supported",
                    );
                }
                let mut validation = combined.default_validation_context.as_ref().map_or_else(
                    CertificateValidation::default,
                    |context| {
                        e.at("default_validation_context", |e| {
                            validation_context(context, ctx, e)
                        })
                    },
                );
                // The deprecated instance field applies when the default context names no CA provider.
                if validation.ca.is_none()
                    && let Some(instance) =
                        &combined.validation_context_certificate_provider_instance
                {
                    validation.ca = legacy_instance(
                        instance,
                        "validation_context_certificate_provider_instance",
                        ctx,
                        e,
                    );
                    validation.system_root_certs = false;
                }
                validation
            })
        }
        Some(ValidationContextType::ValidationContextCertificateProviderInstance(instance)) => {
            CertificateValidation::default().with_ca(legacy_instance(
                instance,
                "validation_context_certificate_provider_instance",
                ctx,
                errors,
            ))
        }
        Some(ValidationContextType::ValidationContextSdsSecretConfig(_)) => {
            errors.push(
                "validation_context_sds_secret_config",
                "SDS is not supported",
            );
            CertificateValidation::default()
        }
        Some(ValidationContextType::ValidationContextCertificateProvider(_)) => {
            errors.push(
                "validation_context_certificate_provider",
                "is not supported",
            );
            CertificateValidation::default()
        }
        None => CertificateValidation::default(),
    };
    // gRFC A29: a client must be able to validate the server, so trust roots are required.
    if errors.len() == problems_before && validation.ca.is_none() && !validation.system_root_certs {
        errors.push(
            "",
            "no CA certificate provider instance (or system_root_certs) configured to validate the server",
        );
    }
    (errors.len() == problems_before).then(|| UpstreamTls::new(validation).with_identity(identity))
}

/// A `CertificateValidationContext` (gRFC A29).
// `match_subject_alt_names` is deprecated in Envoy for the typed form, but it is the one gRFC A29 specifies and the
// only one the model can express (its matchers apply to every SAN type).
#[allow(deprecated)]
fn validation_context(
    context: &CertificateValidationContext,
    ctx: &ValidationContext,
    errors: &mut Errors,
) -> CertificateValidation {
    let refuse = [
        (
            context.trusted_ca.is_some(),
            "trusted_ca",
            "is not supported, use ca_certificate_provider_instance",
        ),
        (
            !context.verify_certificate_spki.is_empty(),
            "verify_certificate_spki",
            "is not supported",
        ),
        (
            !context.verify_certificate_hash.is_empty(),
            "verify_certificate_hash",
            "is not supported",
        ),
        (
            !context.match_typed_subject_alt_names.is_empty(),
            "match_typed_subject_alt_names",
            "is not supported, use match_subject_alt_names",
        ),
        (
            context
                .require_signed_certificate_timestamp
                .is_some_and(|v| v.value),
            "require_signed_certificate_timestamp",
            "is not supported",
        ),
        (context.crl.is_some(), "crl", "is not supported"),
        (
            context.custom_validator_config.is_some(),
            "custom_validator_config",
            "is not supported",
        ),
        (
            context.max_verify_depth.is_some(),
            "max_verify_depth",
            "is not supported",
        ),
    ];
    for (present, field, problem) in refuse {
        if present {
            errors.push(field, problem);
        }
    }

    let mut san_matchers = Vec::with_capacity(context.match_subject_alt_names.len());
    for (index, matcher) in context.match_subject_alt_names.iter().enumerate() {
        let field = format!("match_subject_alt_names[{index}]");
        san_matchers.extend(errors.check(&field, string_matcher(matcher)));
    }
    let ca = context
        .ca_certificate_provider_instance
        .as_ref()
        .and_then(|instance| {
            plugin_instance(instance, "ca_certificate_provider_instance", ctx, errors)
        });
    // gRFC A82: system roots are used only when no CA provider is named.
    let system_root_certs = ca.is_none() && context.system_root_certs.is_some();
    CertificateValidation::default()
        .with_ca(ca)
        .with_system_root_certs(system_root_certs)
        .with_san_matchers(san_matchers)
}

fn plugin_instance(
    instance: &CertificateProviderPluginInstance,
    field: &str,
    ctx: &ValidationContext,
    errors: &mut Errors,
) -> Option<CertificateProviderInstance> {
    super::super::common::certificate_provider(
        &instance.instance_name,
        &instance.certificate_name,
        field,
        ctx,
        errors,
    )
}

fn legacy_instance(
    instance: &LegacyInstance,
    field: &str,
    ctx: &ValidationContext,
    errors: &mut Errors,
) -> Option<CertificateProviderInstance> {
    super::super::common::certificate_provider(
        &instance.instance_name,
        &instance.certificate_name,
        field,
        ctx,
        errors,
    )
}
