//! Server-side TLS (gRFC A29): a filter chain's `transport_socket` with a `DownstreamTlsContext` into
//! [`mesh_core::tls::DownstreamTls`].
//!
//! gRPC takes certificates only from certificate provider instances named in the bootstrap; every other way of
//! supplying certificates or roots (inline or file certificates, SDS, custom validators) is rejected rather than
//! ignored, so a listener never ends up with weaker security than its configuration describes.

use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::downstream_tls_context::OcspStaplePolicy;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext,
};
use mesh_core::tls::{CertificateProviderInstance, CertificateValidation, DownstreamTls};

use crate::resource::ValidationContext;
use crate::resource::common::{Errors, TypedConfig, decode_message, typed_config};

const DOWNSTREAM_TLS_CONTEXT: &str =
    "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
const RAW_BUFFER: &str = "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";

/// A filter chain's transport socket: `None` for plaintext (no socket, or Envoy's `RawBuffer`), TLS for a
/// `DownstreamTlsContext` (gRFC A29); anything else is rejected. Problems are recorded relative to the socket.
pub(crate) fn transport_socket(
    pb: &TransportSocket,
    ctx: &ValidationContext,
    errors: &mut Errors,
) -> Option<DownstreamTls> {
    let Some(ConfigType::TypedConfig(any)) = &pb.config_type else {
        errors.push("typed_config", "must be set");
        return None;
    };
    let config = errors.check("typed_config", typed_config(any))?;
    match config {
        TypedConfig::Message {
            type_name: DOWNSTREAM_TLS_CONTEXT,
            value,
        } => {
            let tls = errors.check(
                "typed_config",
                decode_message::<DownstreamTlsContext>(DOWNSTREAM_TLS_CONTEXT, value),
            )?;
            errors.at("typed_config", |e| downstream_tls_context(&tls, ctx, e))
        }
        TypedConfig::Message {
            type_name: RAW_BUFFER,
            ..
        } => None,
        other => {
            errors.push(
                "typed_config",
                format!("unsupported transport socket type {:?}", other.type_name()),
            );
            None
        }
    }
}

/// `DownstreamTlsContext` per gRFC A29: our certificate from a provider instance (required), client certificates
/// validated with a provider instance's roots, `require_client_certificate` for mutual TLS; `require_sni` and OCSP
/// stapling other than `LENIENT_STAPLING` are rejected (gRPC C-core does the same).
fn downstream_tls_context(
    pb: &DownstreamTlsContext,
    ctx: &ValidationContext,
    errors: &mut Errors,
) -> Option<DownstreamTls> {
    let problems_before = errors.len();
    if pb.require_sni.is_some_and(|v| v.value) {
        errors.push("require_sni", "is not supported");
    }
    if pb.ocsp_staple_policy != OcspStaplePolicy::LenientStapling as i32 {
        errors.push("ocsp_staple_policy", "must be LENIENT_STAPLING");
    }
    let require_client_certificate = pb.require_client_certificate.is_some_and(|v| v.value);
    let (identity, validation) = match &pb.common_tls_context {
        Some(common) => errors.at("common_tls_context", |e| common_tls_context(common, ctx, e)),
        None => (None, None),
    };
    if identity.is_none() && errors.len() == problems_before {
        errors.push(
            "common_tls_context.tls_certificate_provider_instance",
            "must be set: a TLS server needs a certificate",
        );
    }
    if require_client_certificate && validation.is_none() && errors.len() == problems_before {
        errors.push(
            "common_tls_context",
            "require_client_certificate needs a validation context with ca_certificate_provider_instance",
        );
    }
    if errors.len() != problems_before {
        return None;
    }
    Some(
        DownstreamTls::new(identity?)
            .with_validation(validation)
            .with_require_client_certificate(require_client_certificate),
    )
}

/// A server's `CommonTlsContext` per gRFC A29: the identity certificate provider and the validation context.
/// Certificate provider instance names must be in the bootstrap (`ctx.certificate_providers`).
fn common_tls_context(
    pb: &CommonTlsContext,
    ctx: &ValidationContext,
    errors: &mut Errors,
) -> (
    Option<CertificateProviderInstance>,
    Option<CertificateValidation>,
) {
    if !pb.tls_certificates.is_empty() {
        errors.push(
            "tls_certificates",
            "is not supported (use tls_certificate_provider_instance)",
        );
    }
    if !pb.tls_certificate_sds_secret_configs.is_empty() {
        errors.push("tls_certificate_sds_secret_configs", "is not supported");
    }
    #[allow(deprecated)] // rejected: gRFC A29 uses provider *instances* only
    if pb.tls_certificate_certificate_provider.is_some() {
        errors.push("tls_certificate_certificate_provider", "is not supported");
    }
    if pb.custom_tls_certificate_selector.is_some() {
        errors.push("custom_tls_certificate_selector", "is not supported");
    }
    if pb.custom_handshaker.is_some() {
        errors.push("custom_handshaker", "is not supported");
    }
    #[allow(deprecated)]
    // gRFC A29 names the deprecated field; newer control planes send the new one
    let identity = match (
        &pb.tls_certificate_provider_instance,
        &pb.tls_certificate_certificate_provider_instance,
    ) {
        (Some(instance), _) => super::super::common::certificate_provider(
            &instance.instance_name,
            &instance.certificate_name,
            "tls_certificate_provider_instance",
            ctx,
            errors,
        ),
        (None, Some(instance)) => super::super::common::certificate_provider(
            &instance.instance_name,
            &instance.certificate_name,
            "tls_certificate_certificate_provider_instance",
            ctx,
            errors,
        ),
        (None, None) => None,
    };
    let validation = match &pb.validation_context_type {
        None => None,
        Some(ValidationContextType::ValidationContext(context)) => errors
            .at("validation_context", |e| {
                validation_context(context, None, ctx, e)
            }),
        Some(ValidationContextType::CombinedValidationContext(combined)) => {
            errors.at("combined_validation_context", |e| {
                if combined.validation_context_sds_secret_config.is_some() {
                    e.push("validation_context_sds_secret_config", "is not supported");
                }
                #[allow(deprecated)]
                if combined.validation_context_certificate_provider.is_some() {
                    e.push(
                        "validation_context_certificate_provider",
                        "is not supported",
                    );
                }
                #[allow(deprecated)]
                let legacy_ca = combined
                    .validation_context_certificate_provider_instance
                    .as_ref()
                    .and_then(|i| {
                        super::super::common::certificate_provider(
                            &i.instance_name,
                            &i.certificate_name,
                            "validation_context_certificate_provider_instance",
                            ctx,
                            e,
                        )
                    });
                let default = combined
                    .default_validation_context
                    .clone()
                    .unwrap_or_default();
                e.at("default_validation_context", |e| {
                    validation_context(&default, legacy_ca, ctx, e)
                })
            })
        }
        #[allow(deprecated)]
        Some(ValidationContextType::ValidationContextCertificateProviderInstance(i)) => {
            super::super::common::certificate_provider(
                &i.instance_name,
                &i.certificate_name,
                "validation_context_certificate_provider_instance",
                ctx,
                errors,
            )
            .map(|ca| CertificateValidation::default().with_ca(ca))
        }
        Some(ValidationContextType::ValidationContextSdsSecretConfig(_)) => {
            errors.push("validation_context_sds_secret_config", "is not supported");
            None
        }
        #[allow(deprecated)]
        Some(ValidationContextType::ValidationContextCertificateProvider(_)) => {
            errors.push(
                "validation_context_certificate_provider",
                "is not supported",
            );
            None
        }
    };
    (identity, validation)
}

/// A server's `CertificateValidationContext`: roots from `ca_certificate_provider_instance` (or `legacy_ca`, from
/// the deprecated combined-context field). Returns `None` when no roots are configured.
fn validation_context(
    pb: &CertificateValidationContext,
    legacy_ca: Option<CertificateProviderInstance>,
    ctx: &ValidationContext,
    errors: &mut Errors,
) -> Option<CertificateValidation> {
    #[allow(deprecated)]
    // still sent by control planes; gRPC C-core rejects SAN matchers on servers
    let has_san_matchers = !pb.match_subject_alt_names.is_empty();
    // gRPC C-core rejects these: they need machinery (pinning, CT, CRLs, custom validators, file roots) gRPC's
    // certificate-provider model does not have; on a server, SAN matchers and system roots are not supported either
    // (gRFC A29 checks client SANs through RBAC, gRFC A41).
    for (unsupported, field) in [
        (pb.trusted_ca.is_some(), "trusted_ca"),
        (pb.watched_directory.is_some(), "watched_directory"),
        (
            !pb.verify_certificate_spki.is_empty(),
            "verify_certificate_spki",
        ),
        (
            !pb.verify_certificate_hash.is_empty(),
            "verify_certificate_hash",
        ),
        (
            pb.require_signed_certificate_timestamp
                .is_some_and(|v| v.value),
            "require_signed_certificate_timestamp",
        ),
        (pb.crl.is_some(), "crl"),
        (
            pb.custom_validator_config.is_some(),
            "custom_validator_config",
        ),
        (has_san_matchers, "match_subject_alt_names"),
        (
            !pb.match_typed_subject_alt_names.is_empty(),
            "match_typed_subject_alt_names",
        ),
        (pb.system_root_certs.is_some(), "system_root_certs"),
    ] {
        if unsupported {
            errors.push(field, "is not supported on a server");
        }
    }
    let ca = match &pb.ca_certificate_provider_instance {
        Some(instance) => super::super::common::certificate_provider(
            &instance.instance_name,
            &instance.certificate_name,
            "ca_certificate_provider_instance",
            ctx,
            errors,
        ),
        None => legacy_ca,
    };
    ca.map(|ca| CertificateValidation::default().with_ca(ca))
}
