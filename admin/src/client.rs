//! The query commands of the CLI (`trace`, `contacts`, `occupancy`, `boxes`): they call the
//! running central's HTTP API and print a table, JSON or CSV.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use checkpoint_api::notifications::NotificationRow;
use checkpoint_api::roster::Imported;
use checkpoint_api::{
    BoxRow, ContactRow, EventsPage, GalleryPublished, OccupancyDto, RevocationDto, TrajectoryRow,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("token file {path}: {message}")]
    Token { path: String, message: String },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
    Csv,
}

pub struct Client {
    base: String,
    /// `Bearer TOKEN`, sent with every request.
    authorization: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token: it is the key to every person's records.
        f.debug_struct("Client")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(base: &str, token_file: &Path) -> Result<Client, ClientError> {
        let token = std::fs::read_to_string(token_file).map_err(|e| ClientError::Token {
            path: token_file.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            authorization: format!("Bearer {}", token.trim()),
        })
    }

    /// A GET of `url` with the bearer token.
    fn get_request(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        Self::agent()
            .get(url)
            .header("Authorization", &self.authorization)
    }

    /// A POST to `url` with the bearer token.
    fn post_request(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        Self::agent()
            .post(url)
            .header("Authorization", &self.authorization)
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into()
    }

    fn answer<T: DeserializeOwned>(
        url: &str,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, ClientError> {
        let err = |message: String| ClientError::Http {
            url: url.to_string(),
            message,
        };
        let mut resp = resp.map_err(|e| err(e.to_string()))?;
        let status = resp.status();
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| err(e.to_string()))?;
        if !status.is_success() {
            let msg = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or(body);
            return Err(err(format!("{status}: {msg}")));
        }
        serde_json::from_str(&body).map_err(|e| err(format!("unexpected answer: {e}")))
    }

    fn post<T: DeserializeOwned, B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let resp = self.post_request(&url).send_json(body);
        Self::answer(&url, resp)
    }

    fn post_text<T: DeserializeOwned>(&self, path: &str, body: &str) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .post_request(&url)
            .header("Content-Type", "text/csv")
            .send(body);
        Self::answer(&url, resp)
    }

    /// Downloads a consistent snapshot of the running central's store into `out` (through a
    /// temporary file beside it, renamed when complete); returns (bytes, events).
    /// `sqlite`: a copy of the SQLite database file instead of the portable format.
    pub fn backup(
        &self,
        out: &Path,
        seal: &checkpoint_pki::sealed::Seal,
        sqlite: bool,
    ) -> Result<(u64, u64), ClientError> {
        let format = if sqlite { "sqlite" } else { "portable" };
        let url = format!("{}/api/v1/backup?format={format}", self.base);
        let err = |message: String| ClientError::Http {
            url: url.clone(),
            message,
        };
        let resp = self
            .get_request(&url)
            .call()
            .map_err(|e| err(e.to_string()))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.into_body().read_to_string().unwrap_or_default();
            return Err(err(format!("{status}: {body}")));
        }
        let events = resp
            .headers()
            .get("x-checkpoint-events")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        // Personal data: readable by the operator who took it and nobody else; a cut download
        // leaves no file behind (and an older export as it was).
        let bytes = checkpoint_link::files::replace(
            out,
            checkpoint_link::files::Replace::PRIVATE,
            |file| seal.copy(&mut resp.into_body().into_reader(), file),
        )
        .map_err(|e| err(format!("download to {}: {e}", out.display())))?;
        Ok((bytes, events))
    }

    /// Forwards a face gallery file to one box (retained; TLS only).
    pub fn publish_gallery(
        &self,
        box_id: &str,
        bytes: &[u8],
    ) -> Result<GalleryPublished, ClientError> {
        let url = format!("{}/api/v1/boxes/{box_id}/gallery", self.base);
        let resp = self
            .post_request(&url)
            .header("Content-Type", "application/octet-stream")
            .send(bytes);
        Self::answer(&url, resp)
    }

    pub fn notifications(&self, limit: usize) -> Result<Vec<NotificationRow>, ClientError> {
        self.get("/api/v1/notifications", &[("limit", &limit.to_string())])
    }

    /// Imports a people (`what` = "people") or places ("places") CSV file: replacing the
    /// roster or merged into it by id (`upsert`); with `dry_run`, only says what would change.
    pub fn import(
        &self,
        what: &str,
        csv: &str,
        upsert: bool,
        dry_run: bool,
    ) -> Result<Imported, ClientError> {
        let mode = if upsert { "upsert" } else { "replace" };
        self.post_text(
            &format!("/api/v1/roster/{what}?mode={mode}&dry_run={dry_run}"),
            csv,
        )
    }

    /// One page of the events table.
    pub fn events(&self, filters: &[(&str, &str)]) -> Result<EventsPage, ClientError> {
        self.get("/api/v1/events", filters)
    }

    pub fn revoke(
        &self,
        subject: &str,
        issued_before: Option<&str>,
    ) -> Result<RevocationDto, ClientError> {
        self.post(
            "/api/v1/revocations",
            &RevocationDto {
                subject: subject.to_string(),
                issued_before: issued_before.map(str::to_string),
            },
        )
    }

    fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.get_request(&url);
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        Self::answer(&url, req.call())
    }

    pub fn trajectory(
        &self,
        person: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<TrajectoryRow>, ClientError> {
        let mut q = vec![("person", person)];
        q.extend(from.map(|f| ("from", f)));
        q.extend(to.map(|t| ("to", t)));
        self.get("/api/v1/trajectory", &q)
    }

    pub fn contacts(
        &self,
        person: &str,
        from: Option<&str>,
        to: Option<&str>,
        window_s: Option<u64>,
        depth: u8,
    ) -> Result<Vec<ContactRow>, ClientError> {
        let window = window_s.map(|w| w.to_string());
        let depth = depth.to_string();
        let mut q = vec![("person", person), ("depth", depth.as_str())];
        q.extend(from.map(|f| ("from", f)));
        q.extend(to.map(|t| ("to", t)));
        q.extend(window.as_deref().map(|w| ("window_s", w)));
        self.get("/api/v1/contacts", &q)
    }

    pub fn occupancy(&self, place: &str) -> Result<OccupancyDto, ClientError> {
        self.get("/api/v1/occupancy", &[("place", place)])
    }

    pub fn boxes(&self) -> Result<Vec<BoxRow>, ClientError> {
        self.get("/api/v1/boxes", &[])
    }
}

/// Prints rows as an aligned table, JSON or CSV. `cells` turns a row into its columns.
pub fn print<T: Serialize>(
    rows: &[T],
    header: &[&str],
    cells: impl Fn(&T) -> Vec<String>,
    out: Output,
) -> String {
    match out {
        Output::Json => serde_json::to_string_pretty(rows).unwrap_or_default() + "\n",
        Output::Csv => csv_lines(Some(header), rows, cells),
        Output::Table => {
            let body: Vec<Vec<String>> = rows.iter().map(&cells).collect();
            let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
            for r in &body {
                for (i, c) in r.iter().enumerate() {
                    if let Some(w) = width.get_mut(i) {
                        *w = (*w).max(c.chars().count());
                    }
                }
            }
            let line = |cols: Vec<String>| {
                cols.iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c:<w$}", w = width.get(i).copied().unwrap_or(0)))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
                    + "\n"
            };
            let mut s = line(header.iter().map(|h| h.to_string()).collect());
            for r in body {
                s += &line(r);
            }
            s
        }
    }
}

/// Rows as CSV (RFC 4180 quoting), after `header` when given: pages of one export are written
/// one after another with the header once.
pub fn csv_lines<T>(
    header: Option<&[&str]>,
    rows: &[T],
    cells: impl Fn(&T) -> Vec<String>,
) -> String {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // Writing into memory fails only on a record of another length, which these are not.
    if let Some(h) = header {
        let _ = w.write_record(h);
    }
    for r in rows {
        let _ = w.write_record(cells(r));
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

pub mod tables;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct R(&'static str, u32);

    #[test]
    fn tables_csv_and_json() {
        let rows = [R("alice", 3), R("bob, jr", 10)];
        let cells = |r: &R| vec![r.0.to_string(), r.1.to_string()];
        assert_eq!(
            print(&rows, &["who", "n"], cells, Output::Table),
            "who      n\nalice    3\nbob, jr  10\n"
        );
        assert_eq!(
            print(&rows, &["who", "n"], cells, Output::Csv),
            "who,n\nalice,3\n\"bob, jr\",10\n"
        );
        assert!(print(&rows, &["who", "n"], cells, Output::Json).contains("\"alice\""));
        let odd = [R("line\r\nbreak \"q\"", 1)];
        assert_eq!(
            csv_lines(None, &odd, cells),
            "\"line\r\nbreak \"\"q\"\"\",1\n"
        );
    }
}
