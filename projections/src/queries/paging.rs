//! Paging of list queries: page numbers (`{data, pagination}` exactly as the seed's
//! `Pagination`) or opaque cursors (keyset pagination, for large sets).

use super::{QueryError, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

/// The page size when the client gives none.
pub const DEFAULT_LIMIT: u32 = 20;
/// The largest page size; larger requests are clamped.
pub const MAX_LIMIT: u32 = 100;

/// Which slice of a list to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    /// Page `page` (1-based) of `limit` items, with totals (`COUNT(*)` of the filtered set).
    Page {
        /// 1-based page number (0 is treated as 1).
        page: u32,
        /// Items per page (clamped to `1..=MAX_LIMIT`).
        limit: u32,
    },
    /// The `limit` items after the cursor (from the start without one). No totals are
    /// computed; `pagination.next_cursor` continues the list while `has_next`.
    Cursor {
        /// A `next_cursor` from a previous answer with the same sort.
        after: Option<String>,
        /// Items per page (clamped to `1..=MAX_LIMIT`).
        limit: u32,
    },
}

impl Default for Paging {
    fn default() -> Self {
        Self::Page {
            page: 1,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl Paging {
    /// Page `page` of `limit`.
    pub fn page(page: u32, limit: u32) -> Self {
        Self::Page { page, limit }
    }

    /// The clamped page size.
    pub fn limit(&self) -> u32 {
        let (Self::Page { limit, .. } | Self::Cursor { limit, .. }) = self;
        (*limit).clamp(1, MAX_LIMIT)
    }
}

/// A page of a list: `{"data": […], "pagination": {…}}`. `P` is [`Pagination`], or
/// [`CappedPagination`] for lists whose page-mode total may be capped (incidents).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T, P = Pagination> {
    /// The items.
    pub data: Vec<T>,
    /// Where this page is.
    pub pagination: P,
}

/// The seed's `Pagination`. With [`Paging::Page`] every field but `next_cursor` is present;
/// with [`Paging::Cursor`] the totals are absent (not computed) and `next_cursor` is present
/// while `has_next`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pagination {
    /// 1-based page number (page mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_page: Option<u32>,
    /// Number of pages (page mode; 0 for an empty list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_pages: Option<u64>,
    /// The (clamped) page size.
    pub page_size: u32,
    /// Items matching the filters (page mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_items: Option<u64>,
    /// Whether a next page exists.
    pub has_next: bool,
    /// Whether a previous page exists (cursor mode: whether a cursor was given).
    pub has_prev: bool,
    /// Continues the list (cursor mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// [`Pagination`] plus whether its page-mode total is exact, for lists that cap their counts
/// (see [`super::incidents`]): `"total_items_exact": false` is added to the pagination object
/// when `total_items` is only a lower bound (at least that many items match; `total_pages`
/// follows from it, `has_next` is exact all the same). An exact total and cursor mode add
/// nothing, so the object stays the seed's `Pagination` then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CappedPagination {
    /// The seed's fields.
    #[serde(flatten)]
    pub pagination: Pagination,
    /// Page mode: whether `total_items` is exact; `None` in cursor mode.
    #[serde(skip_serializing_if = "exact_or_absent")]
    pub total_items_exact: Option<bool>,
}

/// Serialise `total_items_exact` only when it is `false`.
fn exact_or_absent(exact: &Option<bool>) -> bool {
    *exact != Some(false)
}

impl std::ops::Deref for CappedPagination {
    type Target = Pagination;
    fn deref(&self) -> &Pagination {
        &self.pagination
    }
}

/// The decoded content of a cursor: the sort it belongs to and the sort key of the last item
/// returned (`t` a timestamp, `r` a rank, `n` a name, whichever the sort uses) plus its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    /// The sort's name; a cursor is refused under another sort.
    pub s: String,
    /// Timestamp key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<DateTime<Utc>>,
    /// Rank key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r: Option<i16>,
    /// Name key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// The last item's id (the tie-breaker).
    pub id: Uuid,
}

impl Cursor {
    /// A cursor of sort `s` after the item `id`.
    pub fn new(s: &str, id: Uuid) -> Self {
        Self {
            s: s.to_owned(),
            t: None,
            r: None,
            n: None,
            id,
        }
    }

    /// The opaque form: URL-safe base64 of the JSON.
    pub fn encode(&self) -> String {
        // Serialising this struct cannot fail (string keys, plain values).
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64url::encode(&json)
    }

    /// Decodes `s`, which must belong to sort `sort`.
    pub fn decode(s: &str, sort: &str) -> Result<Self> {
        let bytes = base64url::decode(s).ok_or(QueryError::InvalidCursor)?;
        let c: Self = serde_json::from_slice(&bytes).map_err(|_| QueryError::InvalidCursor)?;
        if c.s != sort {
            return Err(QueryError::InvalidCursor);
        }
        Ok(c)
    }
}

/// What [`fetch_page`] asks its query callback to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Select {
    /// `SELECT count(*) FROM … WHERE <filters>`.
    Count,
    /// `SELECT <columns> FROM … WHERE <filters>`.
    Rows,
}

/// How one list is queried.
pub(crate) struct ListQuery<'f, T> {
    /// The sort's name (stored in cursors).
    pub sort: &'f str,
    /// Pushes `SELECT … FROM … WHERE …` (count or rows); more ` AND …` may follow.
    pub base: &'f (dyn Fn(&mut QueryBuilder<'static, Postgres>, Select) + Sync),
    /// Pushes ` AND <keyset condition>` for a decoded cursor.
    pub after: &'f (dyn Fn(&mut QueryBuilder<'static, Postgres>, &Cursor) -> Result<()> + Sync),
    /// The ORDER BY list (constant SQL).
    pub order_by: &'f str,
    /// Maps a row.
    pub map: &'f (dyn Fn(&PgRow) -> Result<T> + Sync),
    /// The cursor that continues after an item.
    pub cursor_of: &'f (dyn Fn(&T) -> Cursor + Sync),
}

/// The rows of one page, as [`fetch_rows`] returns them.
pub(crate) struct Rows<T> {
    /// The items (at most the clamped limit).
    pub data: Vec<T>,
    /// Whether more items follow (one more row than the limit was found).
    pub has_next: bool,
    /// Cursor mode: continues after the last item while `has_next`.
    pub next_cursor: Option<String>,
}

/// Runs the rows query of a list, page (`LIMIT`/`OFFSET`) or cursor (keyset) mode, fetching
/// one row more than the limit to know whether more follow. Computes no totals.
pub(crate) async fn fetch_rows<T>(
    conn: &mut PgConnection,
    paging: &Paging,
    q: &ListQuery<'_, T>,
) -> Result<Rows<T>> {
    let limit = paging.limit();
    let mut rows = QueryBuilder::new("");
    (q.base)(&mut rows, Select::Rows);
    let mut offset = 0;
    match paging {
        Paging::Page { page, .. } => offset = (i64::from((*page).max(1)) - 1) * i64::from(limit),
        Paging::Cursor { after, .. } => {
            if let Some(after) = after {
                let c = Cursor::decode(after, q.sort)?;
                (q.after)(&mut rows, &c)?;
            }
        }
    }
    rows.push(" ORDER BY ")
        .push(q.order_by)
        .push(" LIMIT ")
        .push_bind(i64::from(limit) + 1);
    if offset > 0 {
        rows.push(" OFFSET ").push_bind(offset);
    }
    let mut data = rows
        .build()
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(q.map)
        .collect::<Result<Vec<T>>>()?;
    let has_next = data.len() > limit as usize;
    data.truncate(limit as usize);
    let next_cursor = match paging {
        Paging::Cursor { .. } if has_next => data.last().map(|t| (q.cursor_of)(t).encode()),
        _ => None,
    };
    Ok(Rows {
        data,
        has_next,
        next_cursor,
    })
}

impl Pagination {
    /// Page mode: page `page` (1-based, 0 counts as 1) of `limit` items of `total`.
    pub(crate) fn page(page: u32, limit: u32, total: u64, has_next: bool) -> Self {
        let page = page.max(1);
        Self {
            current_page: Some(page),
            total_pages: Some(total.div_ceil(u64::from(limit))),
            page_size: limit,
            total_items: Some(total),
            has_next,
            has_prev: page > 1,
            next_cursor: None,
        }
    }

    /// Cursor mode: no totals.
    pub(crate) fn cursor(limit: u32, has_prev: bool, has_next: bool, next: Option<String>) -> Self {
        Self {
            current_page: None,
            total_pages: None,
            page_size: limit,
            total_items: None,
            has_next,
            has_prev,
            next_cursor: next,
        }
    }
}

/// Runs a list query in page or cursor mode: the rows query, plus in page mode an exact
/// `COUNT(*)` of the filtered set (for the small directory lists).
pub(crate) async fn fetch_page<T>(
    conn: &mut PgConnection,
    paging: &Paging,
    q: ListQuery<'_, T>,
) -> Result<Page<T>> {
    let limit = paging.limit();
    let rows = fetch_rows(conn, paging, &q).await?;
    let pagination = match paging {
        Paging::Page { page, .. } => {
            let mut count = QueryBuilder::new("");
            (q.base)(&mut count, Select::Count);
            let total: i64 = count.build().fetch_one(&mut *conn).await?.try_get(0)?;
            Pagination::page(
                *page,
                limit,
                u64::try_from(total).unwrap_or(0),
                rows.has_next,
            )
        }
        Paging::Cursor { after, .. } => {
            Pagination::cursor(limit, after.is_some(), rows.has_next, rows.next_cursor)
        }
    };
    Ok(Page {
        data: rows.data,
        pagination,
    })
}

/// URL-safe base64 without padding (RFC 4648 §5), for cursors.
pub(crate) mod base64url {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    /// Encodes `bytes`.
    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        out
    }

    /// Decodes `s`, or `None` if it is not canonical unpadded base64url.
    pub fn decode(s: &str) -> Option<Vec<u8>> {
        let val = |c: u8| ALPHABET.iter().position(|&a| a == c).map(|p| p as u32);
        let bytes = s.as_bytes();
        if bytes.len() % 4 == 1 {
            return None;
        }
        let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
        for chunk in bytes.chunks(4) {
            let mut n = 0u32;
            for (i, c) in chunk.iter().enumerate() {
                n |= val(*c)? << (18 - 6 * i);
            }
            let produced = chunk.len() - 1;
            for i in 0..produced {
                out.push(((n >> (16 - 8 * i)) & 0xff) as u8);
            }
            // Unused low bits must be zero, so every byte string has one spelling.
            let used_bits = 8 * produced;
            if n & ((1 << (24 - used_bits)) - 1) != 0 {
                return None;
            }
        }
        Some(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let s = base64url::encode(&bytes);
            assert!(!s.contains('=') && !s.contains('+') && !s.contains('/'));
            assert_eq!(base64url::decode(&s).unwrap(), bytes);
        }
        assert_eq!(base64url::encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url::encode(b"fo"), "Zm8");
        assert_eq!(base64url::decode("Zm8").unwrap(), b"fo");
        assert_eq!(base64url::decode("Zm9"), None, "non-zero padding bits");
        assert_eq!(base64url::decode("Z"), None);
        assert_eq!(base64url::decode("Zm8="), None);
    }

    #[test]
    fn cursor_round_trips_and_is_bound_to_its_sort() {
        let mut c = Cursor::new("-created_at", Uuid::now_v7());
        c.t = Some(Utc::now());
        let s = c.encode();
        assert_eq!(Cursor::decode(&s, "-created_at").unwrap(), c);
        assert!(matches!(
            Cursor::decode(&s, "priority"),
            Err(QueryError::InvalidCursor)
        ));
        assert!(matches!(
            Cursor::decode("not a cursor", "priority"),
            Err(QueryError::InvalidCursor)
        ));
    }

    #[test]
    fn limit_is_clamped() {
        assert_eq!(Paging::page(1, 0).limit(), 1);
        assert_eq!(Paging::page(1, 1000).limit(), MAX_LIMIT);
        assert_eq!(Paging::default().limit(), DEFAULT_LIMIT);
    }
}
