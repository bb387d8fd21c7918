//! Incident attachments: multipart upload into content-addressed storage on disk (namespaced
//! by tenant, deduplicated by sha256, which is recorded in the event), and download with the
//! stored content type as `Content-Disposition: attachment`.

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::routes::incidents::{read_detail_for, run_commands};
use axum::body::Body;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventdesk_domain::incident::IncidentCommand;
use eventdesk_domain::values::{ContentType, FileName, Sha256Hex};
use eventdesk_domain::{AttachmentId, IncidentId, TenantId};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;

/// Where a blob of `tenant` with digest `sha` lives.
fn blob_path(state: &AppState, tenant: TenantId, sha: &str) -> PathBuf {
    state
        .config
        .data_dir
        .join("attachments")
        .join(tenant.0.to_string())
        .join(&sha[..2])
        .join(sha)
}

fn io_error(e: std::io::Error) -> ApiError {
    ApiError::internal(e)
}

/// `POST /api/v1/incidents/{id}/attachments` (multipart, one `file` part) → 201 with the
/// incident. Larger than `EVENTDESK_ATTACHMENT_MAX_BYTES` → 413.
pub async fn upload(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Response> {
    let id: IncidentId = IncidentId(id.parse().map_err(|_| ApiError::NotFound)?);
    let mut multipart = multipart.map_err(|e| {
        if e.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            ApiError::UnsupportedMediaType
        } else {
            ApiError::BadRequest(format!("expected multipart/form-data: {}", e.body_text()))
        }
    })?;
    // The incident must be visible to the caller before anything is stored.
    read_detail_for(&state, &principal, id).await?;
    let max = state.config.attachment_max_bytes;
    let mut stored: Option<(String, String, u64, String)> = None;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(&e))?
    {
        if field.name() != Some("file") {
            return Err(ApiError::field(
                field.name().unwrap_or("body").to_owned(),
                "unknown multipart field (expected `file`)",
            ));
        }
        if stored.is_some() {
            return Err(ApiError::field("file", "exactly one file per request"));
        }
        let filename = field.file_name().unwrap_or("attachment").to_owned();
        let content_type = field
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_owned();
        let tmp_dir = state.config.data_dir.join("attachments").join("tmp");
        tokio::fs::create_dir_all(&tmp_dir)
            .await
            .map_err(io_error)?;
        let tmp = tmp_dir.join(uuid::Uuid::now_v7().to_string());
        let mut file = tokio::fs::File::create(&tmp).await.map_err(io_error)?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let result = async {
            while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(&e))? {
                size += chunk.len() as u64;
                if size > max {
                    return Err(ApiError::PayloadTooLarge);
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(io_error)?;
            }
            file.sync_all().await.map_err(io_error)?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        let sha = hex::encode(hasher.finalize());
        let dest = blob_path(&state, principal.tenant, &sha);
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io_error)?;
        }
        // Same content, same name: an existing blob is identical, keep it.
        if tokio::fs::try_exists(&dest).await.map_err(io_error)? {
            let _ = tokio::fs::remove_file(&tmp).await;
        } else {
            tokio::fs::rename(&tmp, &dest).await.map_err(io_error)?;
        }
        stored = Some((filename, content_type, size, sha));
    }
    let Some((filename, content_type, size, sha)) = stored else {
        return Err(ApiError::field("file", "a `file` part is required"));
    };
    let cmd = IncidentCommand::AddAttachment {
        attachment_id: AttachmentId::new(),
        filename: FileName::parse(&filename).map_err(|e| ApiError::field("file", e.message()))?,
        content_type: ContentType::parse(&content_type)
            .map_err(|e| ApiError::field("file", e.message()))?,
        size_bytes: size,
        sha256: Sha256Hex::parse(&sha)?,
        uploaded_by: principal.actor(),
    };
    let mut resp = run_commands(&state, &principal, &headers, id, None, vec![cmd]).await?;
    *resp.status_mut() = StatusCode::CREATED;
    Ok(resp)
}

fn multipart_error(e: &axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest(format!("malformed multipart body: {}", e.body_text()))
    }
}

/// `GET /api/v1/incidents/{id}/attachments/{aid}`: the file, as an attachment.
pub async fn download(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, aid)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = IncidentId(id.parse().map_err(|_| ApiError::NotFound)?);
    let aid: uuid::Uuid = aid.parse().map_err(|_| ApiError::NotFound)?;
    let detail = read_detail_for(&state, &principal, id).await?;
    let att = detail
        .attachments
        .iter()
        .find(|a| a.id.0 == aid)
        .ok_or(ApiError::NotFound)?;
    let path = blob_path(&state, principal.tenant, &att.sha256);
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            tracing::error!(sha256 = %att.sha256, "attachment blob missing from storage");
        }
        io_error(e)
    })?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&att.content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&att.file_size.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    h.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(&att.file_name),
    );
    Ok(resp)
}

/// `attachment; filename="ascii-fallback"; filename*=UTF-8''percent-encoded` (RFC 6266).
fn content_disposition(name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_ ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_is_safe_for_any_name() {
        let v = content_disposition("報告 \"x\".pdf");
        let s = v.to_str().unwrap_or("");
        assert!(s.starts_with("attachment; filename=\"__ _x_.pdf\""), "{s}");
        assert!(
            s.contains("filename*=UTF-8''%E5%A0%B1%E5%91%8A%20%22x%22.pdf"),
            "{s}"
        );
    }
}
