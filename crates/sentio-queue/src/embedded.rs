//! The embedded durable queue `sentio serve` uses when no SQS endpoint is configured. It keeps
//! SQS's semantics that the worker relies on: at-least-once delivery, a visibility timeout,
//! receive counts, and a dead-letter list after `max_receives`.
//!
//! Durability: every change is a JSON line appended to `queue.log`; a send or delete is fsynced
//! before it is acknowledged, so an acknowledged message survives a crash or `kill -9`. On start
//! the log is replayed; messages that were in flight become visible again (their worker is gone),
//! exactly as SQS would after the visibility timeout. Receive counts are appended without fsync:
//! a crash can lose one count, which costs one extra attempt, never a message. The log is
//! compacted when most of it describes messages already gone.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{Depth, QueueError, Received, now_ms};

#[derive(Debug, Clone)]
pub struct EmbeddedSettings {
    /// How long a received message stays hidden before it is delivered again.
    pub visibility_timeout: Duration,
    /// After this many receives without a delete, the next receive moves it to the dead letters.
    pub max_receives: u32,
}

impl Default for EmbeddedSettings {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
            max_receives: 5,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Record {
    Send {
        seq: u64,
        body: String,
        sent_at_ms: u64,
        #[serde(default)]
        receives: u32,
    },
    Receive {
        seq: u64,
    },
    Delete {
        seq: u64,
    },
    Dead {
        seq: u64,
    },
}

struct Message {
    body: String,
    sent_at_ms: u64,
    receive_count: u32,
    invisible_until: Option<Instant>,
}

struct State {
    log: File,
    live: BTreeMap<u64, Message>,
    dead: BTreeMap<u64, Message>,
    next_seq: u64,
    records: usize,
}

pub struct EmbeddedQueue {
    dir: PathBuf,
    settings: EmbeddedSettings,
    state: Mutex<State>,
    arrived: tokio::sync::Notify,
}

const LOG: &str = "queue.log";

impl EmbeddedQueue {
    /// Opens (or creates) the queue in `dir`, replaying its log.
    pub fn open(dir: &Path, settings: EmbeddedSettings) -> Result<Self, QueueError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(LOG);
        let mut live = BTreeMap::new();
        let mut dead = BTreeMap::new();
        let mut next_seq = 1;
        let mut records = 0;
        if path.exists() {
            for (n, line) in BufReader::new(File::open(&path)?).lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                // A torn last line (crash mid-append) was never acknowledged: skip it.
                let record: Record = match serde_json::from_str(&line) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(line = n + 1, error = %e, "skipping unreadable queue log line");
                        continue;
                    }
                };
                records += 1;
                match record {
                    Record::Send {
                        seq,
                        body,
                        sent_at_ms,
                        receives,
                    } => {
                        next_seq = next_seq.max(seq + 1);
                        live.insert(
                            seq,
                            Message {
                                body,
                                sent_at_ms,
                                receive_count: receives,
                                invisible_until: None,
                            },
                        );
                    }
                    Record::Receive { seq } => {
                        if let Some(m) = live.get_mut(&seq) {
                            m.receive_count += 1;
                        }
                    }
                    Record::Delete { seq } => {
                        live.remove(&seq);
                        dead.remove(&seq);
                    }
                    Record::Dead { seq } => {
                        if let Some(m) = live.remove(&seq) {
                            dead.insert(seq, m);
                        }
                    }
                }
            }
        }
        let log = OpenOptions::new().create(true).append(true).open(&path)?;
        let queue = Self {
            dir: dir.to_owned(),
            settings,
            state: Mutex::new(State {
                log,
                live,
                dead,
                next_seq,
                records,
            }),
            arrived: tokio::sync::Notify::new(),
        };
        queue.compact_if_worth_it()?;
        Ok(queue)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn append(state: &mut State, records: &[Record], sync: bool) -> Result<(), QueueError> {
        let mut buf = Vec::new();
        for r in records {
            serde_json::to_writer(&mut buf, r).map_err(|e| QueueError::Corrupt(e.to_string()))?;
            buf.push(b'\n');
        }
        state.log.write_all(&buf)?;
        if sync {
            state.log.sync_data()?;
        }
        state.records += records.len();
        Ok(())
    }

    /// Appends `bodies`; returns once they are on disk.
    pub fn send(&self, bodies: &[String]) -> Result<(), QueueError> {
        let mut state = self.lock();
        let sent_at_ms = now_ms();
        let mut records = Vec::with_capacity(bodies.len());
        let first = state.next_seq;
        for (i, body) in bodies.iter().enumerate() {
            records.push(Record::Send {
                seq: first + i as u64,
                body: body.clone(),
                sent_at_ms,
                receives: 0,
            });
        }
        Self::append(&mut state, &records, true)?;
        for (i, body) in bodies.iter().enumerate() {
            state.live.insert(
                first + i as u64,
                Message {
                    body: body.clone(),
                    sent_at_ms,
                    receive_count: 0,
                    invisible_until: None,
                },
            );
        }
        state.next_seq = first + bodies.len() as u64;
        drop(state);
        self.arrived.notify_waiters();
        Ok(())
    }

    /// Up to `max` visible messages, waiting up to `wait` for the first (long polling).
    pub async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, QueueError> {
        let deadline = Instant::now() + wait;
        loop {
            let notified = self.arrived.notified();
            let (batch, next_visible) = self.try_receive(max)?;
            if !batch.is_empty() {
                return Ok(batch);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            // Wake for a send, for an in-flight message becoming visible, or at the deadline.
            let until = next_visible.map_or(deadline, |t| t.min(deadline));
            let _ = tokio::time::timeout(until.saturating_duration_since(now), notified).await;
        }
    }

    fn try_receive(&self, max: usize) -> Result<(Vec<Received>, Option<Instant>), QueueError> {
        let mut state = self.lock();
        let now = Instant::now();
        let mut out = Vec::new();
        let mut records = Vec::new();
        let mut to_dead = Vec::new();
        let mut next_visible: Option<Instant> = None;
        for (&seq, m) in state.live.iter_mut() {
            if out.len() >= max {
                break;
            }
            if let Some(t) = m.invisible_until
                && t > now
            {
                next_visible = Some(next_visible.map_or(t, |n| n.min(t)));
                continue;
            }
            if m.receive_count >= self.settings.max_receives {
                to_dead.push(seq);
                continue;
            }
            m.receive_count += 1;
            m.invisible_until = Some(now + self.settings.visibility_timeout);
            records.push(Record::Receive { seq });
            out.push(Received {
                message_id: format!("m-{seq}"),
                receipt: format!("{seq}:{}", m.receive_count),
                body: m.body.clone(),
                receive_count: m.receive_count,
                sent_at_ms: m.sent_at_ms,
            });
        }
        records.extend(to_dead.iter().map(|&seq| Record::Dead { seq }));
        if !records.is_empty() {
            Self::append(&mut state, &records, !to_dead.is_empty())?;
        }
        for seq in to_dead {
            if let Some(m) = state.live.remove(&seq) {
                tracing::warn!(message_id = %format!("m-{seq}"), receives = m.receive_count, "moved to dead letters");
                state.dead.insert(seq, m);
            }
        }
        Ok((out, next_visible))
    }

    /// Deletes received messages. A receipt from an earlier receive of a message that has been
    /// delivered again since is stale and ignored: only the latest holder may delete.
    pub fn delete(&self, receipts: &[String]) -> Result<(), QueueError> {
        let mut state = self.lock();
        let mut records = Vec::new();
        for receipt in receipts {
            let Some((seq, count)) = parse_receipt(receipt) else {
                return Err(QueueError::InvalidReceipt(receipt.clone()));
            };
            match state.live.get(&seq) {
                Some(m) if m.receive_count == count => records.push(Record::Delete { seq }),
                Some(_) => tracing::debug!(%receipt, "stale receipt ignored"),
                None => {}
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        Self::append(&mut state, &records, true)?;
        for r in &records {
            if let Record::Delete { seq } = r {
                state.live.remove(seq);
            }
        }
        drop(state);
        self.compact_if_worth_it()
    }

    pub fn depth(&self) -> Depth {
        let state = self.lock();
        let now = Instant::now();
        let in_flight = state
            .live
            .values()
            .filter(|m| m.invisible_until.is_some_and(|t| t > now))
            .count() as u64;
        Depth {
            visible: state.live.len() as u64 - in_flight,
            in_flight,
            dead: state.dead.len() as u64,
            oldest_sent_at_ms: state.live.values().map(|m| m.sent_at_ms).min(),
        }
    }

    /// Bodies of the dead letters, oldest first.
    pub fn dead_letters(&self) -> Vec<String> {
        self.lock().dead.values().map(|m| m.body.clone()).collect()
    }

    /// Rewrites the log with only what is still queued once it is mostly history.
    fn compact_if_worth_it(&self) -> Result<(), QueueError> {
        let mut state = self.lock();
        let alive = state.live.len() + state.dead.len();
        if state.records < 1024 || state.records < 4 * alive.max(1) {
            return Ok(());
        }
        let tmp = self.dir.join(format!("{LOG}.compact"));
        {
            let mut out = File::create(&tmp)?;
            let mut buf = Vec::new();
            let sends = state.live.iter().chain(state.dead.iter());
            for (&seq, m) in sends {
                let record = Record::Send {
                    seq,
                    body: m.body.clone(),
                    sent_at_ms: m.sent_at_ms,
                    receives: m.receive_count,
                };
                serde_json::to_writer(&mut buf, &record)
                    .map_err(|e| QueueError::Corrupt(e.to_string()))?;
                buf.push(b'\n');
            }
            for &seq in state.dead.keys() {
                serde_json::to_writer(&mut buf, &Record::Dead { seq })
                    .map_err(|e| QueueError::Corrupt(e.to_string()))?;
                buf.push(b'\n');
            }
            out.write_all(&buf)?;
            out.sync_all()?;
        }
        let path = self.dir.join(LOG);
        std::fs::rename(&tmp, &path)?;
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        state.log = OpenOptions::new().append(true).open(&path)?;
        state.records = alive + state.dead.len();
        Ok(())
    }
}

fn parse_receipt(receipt: &str) -> Option<(u64, u32)> {
    let (seq, count) = receipt.split_once(':')?;
    Some((seq.parse().ok()?, count.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(visibility_ms: u64, max_receives: u32) -> EmbeddedSettings {
        EmbeddedSettings {
            visibility_timeout: Duration::from_millis(visibility_ms),
            max_receives,
        }
    }

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sentio-embedded-{name}-{}-{}",
            std::process::id(),
            now_ms()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[tokio::test]
    async fn survives_a_restart_and_redelivers_in_flight_messages() {
        let dir = tempdir("restart");
        {
            let q = EmbeddedQueue::open(&dir, settings(60_000, 5)).unwrap();
            q.send(&["a".into(), "b".into(), "c".into()]).unwrap();
            let got = q.receive(2, Duration::ZERO).await.unwrap();
            assert_eq!(got.len(), 2);
            q.delete(&[got[0].receipt.clone()]).unwrap();
            // "b" is in flight when the process dies.
        }
        let q = EmbeddedQueue::open(&dir, settings(60_000, 5)).unwrap();
        let got = q.receive(10, Duration::ZERO).await.unwrap();
        let bodies: Vec<_> = got.iter().map(|r| r.body.as_str()).collect();
        assert_eq!(bodies, ["b", "c"]);
        assert_eq!(
            got[0].receive_count, 2,
            "the receive before the restart counts"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn visibility_timeout_then_dead_letters() {
        let dir = tempdir("dlq");
        let q = EmbeddedQueue::open(&dir, settings(50, 2)).unwrap();
        q.send(&["poison".into()]).unwrap();
        for attempt in 1..=2 {
            let got = q.receive(1, Duration::from_secs(2)).await.unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].receive_count, attempt);
            assert!(
                q.receive(1, Duration::ZERO).await.unwrap().is_empty(),
                "hidden"
            );
        }
        // The third receive finds it over max_receives and moves it to the dead letters.
        assert!(
            q.receive(1, Duration::from_millis(200))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(q.depth().dead, 1);
        assert_eq!(q.dead_letters(), ["poison"]);
        drop(q);
        let q = EmbeddedQueue::open(&dir, settings(50, 2)).unwrap();
        assert_eq!(q.depth().dead, 1, "dead letters are durable too");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn stale_receipts_do_not_delete() {
        let dir = tempdir("stale");
        let q = EmbeddedQueue::open(&dir, settings(30, 5)).unwrap();
        q.send(&["x".into()]).unwrap();
        let first = q.receive(1, Duration::ZERO).await.unwrap().remove(0);
        let second = q
            .receive(1, Duration::from_secs(2))
            .await
            .unwrap()
            .remove(0);
        q.delete(&[first.receipt]).unwrap();
        assert_eq!(q.depth().visible + q.depth().in_flight, 1);
        q.delete(&[second.receipt]).unwrap();
        assert_eq!(q.depth().visible + q.depth().in_flight, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn compaction_keeps_what_is_queued() {
        let dir = tempdir("compact");
        let q = EmbeddedQueue::open(&dir, settings(60_000, 5)).unwrap();
        for i in 0..600 {
            q.send(&[format!("m{i}")]).unwrap();
        }
        let got = q.receive(590, Duration::ZERO).await.unwrap();
        let receipts: Vec<_> = got.iter().map(|r| r.receipt.clone()).collect();
        q.delete(&receipts).unwrap();
        let lines = std::fs::read_to_string(dir.join(LOG))
            .unwrap()
            .lines()
            .count();
        assert!(lines < 100, "compacted to {lines} lines");
        drop(q);
        let q = EmbeddedQueue::open(&dir, settings(60_000, 5)).unwrap();
        let rest: Vec<_> = q
            .receive(100, Duration::ZERO)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.body)
            .collect();
        assert_eq!(
            rest,
            (590..600).map(|i| format!("m{i}")).collect::<Vec<_>>()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
