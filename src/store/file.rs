//! One file per session, in the layouts of think-session-file (ThinkJS 3/4) and of
//! ThinkJS 2's file adapter, so sessions survive a switch in either direction (G4).
//!
//! Writes go to a temporary file in the same folder, the current file is renamed aside
//! (`.<name>.old`), the temporary file renamed into place and the old one removed. No
//! rename replaces an existing file: on ext4 that forces the new data out to disk and
//! costs a millisecond per write. A reader that finds no file in the instant between
//! the two renames waits for the lock (shared) and reads again, and a writer killed between them
//! leaves the old file aside, which the next access under the lock puts back: a reader
//! or a killed process only ever sees a whole file, old or new. A patch is merged
//! under an exclusive `flock` on the store's folder, which holds between the threads of
//! one process and between processes (ThinkJS workers share one folder), so concurrent
//! writers of different keys all survive (G2). Every call blocks: the bindings run it on
//! a worker thread. Nothing is fsynced: a write survives the death of the process, not a
//! power cut (as with think-session-file).

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Instant;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::id::{self, SessionId};
use crate::session::{check_max_bytes, Patch, Record};
use crate::store::private::{self, PrivateFolders};
use crate::store::{options, Format, Loaded, Runs, SessionStore};

/// The store's options as JavaScript names them (think-session-file's, and ThinkJS 2's
/// layout).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    /// The folder of the session files; an absolute path.
    session_path: PathBuf,
    format: Option<String>,
    /// With 'thinkjs2': how many leading characters of the id become folders. Default 1.
    path_depth: Option<f64>,
    max_bytes: Option<f64>,
    /// Use a folder that another user owns or may write in, or that is a link.
    trust_folder: Option<bool>,
}

/// The store registered as "file".
pub fn open(json: &str) -> Result<Box<dyn SessionStore>> {
    let config: Config = options::parse("file", json)?;
    let layout = match options::format(config.format.as_deref())? {
        Format::ThinkJs3 => Layout::ThinkJs3,
        Format::ThinkJs2 => Layout::ThinkJs2 {
            depth: options::count("pathDepth", config.path_depth, 1)?,
        },
    };
    Ok(Box::new(FileStore::new(FileOptions {
        root: config.session_path,
        layout,
        max_bytes: options::max_bytes(config.max_bytes)?,
        trust_folder: config.trust_folder.unwrap_or(false),
    })?))
}
const TEMP_SUFFIX: &str = ".tmp";
const ASIDE_SUFFIX: &str = ".old";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// think-session-file: `<root>/<id>`, `{"expires","maxAge","data"}`.
    ThinkJs3,
    /// ThinkJS 2: `<root>/<first `depth` chars of id, a folder each>/<id>.json`,
    /// `{"data","expire","timeout"}` with timeout in seconds.
    ThinkJs2 { depth: usize },
}

impl Layout {
    /// The record in a session file's bytes; none when they are not one (corrupt or foreign).
    pub fn decode(&self, bytes: &[u8]) -> Option<Record> {
        #[derive(Deserialize)]
        struct ThinkJs2File<'a> {
            #[serde(borrow)]
            data: &'a RawValue,
            expire: f64,
            timeout: Option<f64>,
        }
        let text = std::str::from_utf8(bytes).ok()?;
        if *self == Layout::ThinkJs3 {
            return Record::from_thinkjs3(text);
        }
        let file: ThinkJs2File = serde_json::from_str(text).ok()?;
        file.data.get().starts_with('{').then(|| Record {
            data: file.data.get().to_owned(),
            expires_at_ms: file.expire as i64,
            max_age_ms: (file.timeout.unwrap_or(0.0) * 1000.0) as i64,
        })
    }

    /// The file's text for `record`.
    pub fn encode(&self, record: &Record) -> String {
        match self {
            Layout::ThinkJs3 => format!(
                "{{\"expires\":{},\"maxAge\":{},\"data\":{}}}",
                record.expires_at_ms, record.max_age_ms, record.data
            ),
            Layout::ThinkJs2 { .. } => format!(
                "{{\"data\":{},\"expire\":{},\"timeout\":{}}}",
                record.data,
                record.expires_at_ms,
                record.max_age_ms.saturating_add(999) / 1000
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct FileOptions {
    pub root: PathBuf,
    pub layout: Layout,
    pub max_bytes: usize,
    pub trust_folder: bool,
}

pub struct FileStore {
    root: PathBuf,
    layout: Layout,
    max_bytes: usize,
    /// Threads of this process queue here, so only one writer at a time waits on the
    /// `flock` (the kernel wakes every waiter of a released flock; this hands over to one).
    in_process: RwLock<()>,
    /// The root and, in ThinkJS 2's layout, the prefix folders: owner-only, checked once.
    folders: PrivateFolders,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl FileStore {
    pub fn new(options: FileOptions) -> Result<Self> {
        if !options.root.is_absolute() {
            return Err(Error::InvalidOption {
                name: "sessionPath",
                reason: format!("{} is not an absolute path", options.root.display()),
            });
        }
        check_max_bytes(options.max_bytes)?;
        if let Layout::ThinkJs2 { depth } = options.layout {
            if depth > id::MIN_LEN {
                return Err(Error::InvalidOption {
                    name: "pathDepth",
                    reason: format!(
                        "{depth} is more than the shortest id ({} characters)",
                        id::MIN_LEN
                    ),
                });
            }
        }
        let folders = PrivateFolders::sessions(options.trust_folder);
        // A folder that is there already is judged now, so a bad one fails the handle.
        folders
            .ensure(&options.root, false)
            .map_err(|reason| Error::InvalidOption {
                name: "sessionPath",
                reason,
            })?;
        Ok(FileStore {
            root: options.root,
            layout: options.layout,
            max_bytes: options.max_bytes,
            in_process: RwLock::new(()),
            folders,
        })
    }

    /// Checks the folders on the way to `path` (see [`PrivateFolders::ensure`]); with
    /// `create`, makes the missing ones. False when one is missing and `create` is off.
    fn ready(&self, path: &Path, create: bool) -> Result<bool> {
        let mut dirs: Vec<&Path> = path
            .ancestors()
            .skip(1)
            .take_while(|dir| dir.starts_with(&self.root))
            .collect();
        dirs.reverse(); // the root first
        for dir in dirs {
            let there = self
                .folders
                .ensure(dir, create)
                .map_err(|reason| Error::store("file", reason))?;
            if !there {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The file of `id`. Ids hold only `[A-Za-z0-9_-]` (G5), so this never leaves `root`.
    fn path_of(&self, id: &SessionId) -> PathBuf {
        match self.layout {
            Layout::ThinkJs3 => self.root.join(id.as_str()),
            Layout::ThinkJs2 { depth } => {
                let mut path = self.root.clone();
                for c in id.as_str().chars().take(depth) {
                    path.push(c.to_string());
                }
                path.push(format!("{id}.json"));
                path
            }
        }
    }

    fn io_error(&self, path: &Path, err: std::io::Error) -> Error {
        Error::store("file", format!("{}: {err}", path.display()))
    }

    /// The bytes of `path`, or none when there is no such file (or folder). A link in its
    /// place is an error, never followed.
    fn read_bytes(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        if !self.ready(path, false)? {
            return Ok(None);
        }
        private::read_file(path).map_err(|err| self.io_error(path, err))
    }

    /// The record in `path`, under the lock: a file a killed writer left aside is put
    /// back first. A file that does not parse as a session (corrupt or foreign) is none;
    /// gc removes it.
    fn read_locked(&self, path: &Path) -> Result<Option<Record>> {
        if let Some(bytes) = self.read_bytes(path)? {
            return Ok(self.layout.decode(&bytes));
        }
        let aside = aside_path(path);
        match fs::rename(&aside, path) {
            Ok(()) => Ok(self
                .read_bytes(path)?
                .and_then(|bytes| self.layout.decode(&bytes))),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
            Err(err) => Err(self.io_error(&aside, err)),
        }
    }

    /// The record in `path` without the lock. A missing file is read again under the
    /// shared lock (a writer may be between its renames), and only a file left aside by a
    /// killed writer takes the exclusive one to be put back.
    fn read(&self, path: &Path) -> Result<Option<Record>> {
        if let Some(bytes) = self.read_bytes(path)? {
            return Ok(self.layout.decode(&bytes));
        }
        let again = self.locked_shared(|| self.read_bytes(path))?;
        match again {
            Some(bytes) => Ok(self.layout.decode(&bytes)),
            None if aside_path(path).exists() => self.locked(|_| self.read_locked(path)),
            None => Ok(None),
        }
    }

    /// Replaces `path` whole, under the lock (see the module's comment for the steps).
    fn write(&self, path: &Path, record: &Record) -> Result<()> {
        let dir = path.parent().unwrap_or(&self.root);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("session");
        let temp = dir.join(format!(
            ".{name}.{}.{}{TEMP_SUFFIX}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        self.ready(path, true)?;
        let created = private::create_file(&temp);
        let filled =
            created.and_then(|mut file| file.write_all(self.layout.encode(record).as_bytes()));
        if let Err(err) = filled {
            let _ = fs::remove_file(&temp);
            return Err(self.io_error(&temp, err));
        }
        let aside = aside_path(path);
        let moved = match fs::rename(path, &aside) {
            Ok(()) => true,
            Err(err) if err.kind() == ErrorKind::NotFound => false,
            Err(err) => {
                let _ = fs::remove_file(&temp);
                return Err(self.io_error(path, err));
            }
        };
        if let Err(err) = fs::rename(&temp, path) {
            if moved {
                let _ = fs::rename(&aside, path);
            }
            let _ = fs::remove_file(&temp);
            return Err(self.io_error(path, err));
        }
        if moved {
            let _ = fs::remove_file(&aside);
        }
        Ok(())
    }

    /// Holds the store's exclusive lock (between threads and processes) while `f` runs.
    /// `f` gets the milliseconds spent waiting for it, so that expiry is judged by the
    /// clock at the time of the merge, not at the time of the call.
    fn locked<T>(&self, f: impl FnOnce(i64) -> Result<T>) -> Result<T> {
        let asked = Instant::now();
        let _turn = self.in_process.write().unwrap_or_else(|p| p.into_inner());
        let lock = self.open_root()?;
        lock.lock().map_err(|e| self.io_error(&self.root, e))?;
        let result = f(asked.elapsed().as_millis() as i64);
        drop(lock); // closing the folder releases the lock
        result
    }

    /// The shared lock: readers of a missing file wait for writers, not for each other.
    fn locked_shared<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let _turn = self.in_process.read().unwrap_or_else(|p| p.into_inner());
        let lock = self.open_root()?;
        lock.lock_shared()
            .map_err(|e| self.io_error(&self.root, e))?;
        let result = f();
        drop(lock);
        result
    }

    fn open_root(&self) -> Result<File> {
        self.folders
            .ensure(&self.root, true)
            .map_err(|reason| Error::store("file", reason))?;
        File::open(&self.root).map_err(|e| self.io_error(&self.root, e))
    }

    pub fn load_blocking(&self, id: &SessionId, now_ms: i64) -> Result<Option<Record>> {
        let path = self.path_of(id);
        Ok(self.read(&path)?.filter(|r| r.is_live(now_ms)))
    }

    /// Under the lock, runs `f` on the live record in `path` (if any) and the time of the
    /// merge: the call's time plus what it waited for the lock (G6).
    fn with_live_locked<T>(
        &self,
        path: &Path,
        now_ms: i64,
        f: impl FnOnce(Option<Record>, i64) -> Result<T>,
    ) -> Result<T> {
        self.locked(|waited| {
            let now_ms = now_ms + waited;
            f(
                self.read_locked(path)?.filter(|r| r.is_live(now_ms)),
                now_ms,
            )
        })
    }

    /// The live data, refreshing the expiry when `auto_update_rate` says so (the flag).
    /// Only a refresh takes the lock.
    pub fn load_data_blocking(
        &self,
        id: &SessionId,
        now_ms: i64,
        rate: f64,
    ) -> Result<Option<Loaded>> {
        let path = self.path_of(id);
        let Some(record) = self.read(&path)?.filter(|r| r.is_live(now_ms)) else {
            return Ok(None);
        };
        if !record.needs_refresh(now_ms, rate) {
            return Ok(Some(Loaded {
                data: record.data,
                refreshed: false,
            }));
        }
        self.with_live_locked(&path, now_ms, |current, now_ms| match current {
            Some(mut current) => {
                let refreshed = current.refresh_if_due(now_ms, rate);
                if refreshed {
                    self.write(&path, &current)?;
                }
                Ok(Some(Loaded {
                    data: current.data,
                    refreshed,
                }))
            }
            None => Ok(None),
        })
    }

    pub fn apply_patch_blocking(&self, id: &SessionId, patch: &Patch, now_ms: i64) -> Result<()> {
        let path = self.path_of(id);
        self.with_live_locked(&path, now_ms, |current, now_ms| {
            let next = patch.apply_to(current.as_ref(), now_ms, self.max_bytes)?;
            self.write(&path, &next)
        })
    }

    pub fn touch_blocking(&self, id: &SessionId, max_age_ms: i64, now_ms: i64) -> Result<bool> {
        let path = self.path_of(id);
        self.with_live_locked(&path, now_ms, |current, now_ms| match current {
            Some(mut current) => {
                current.extend(now_ms, max_age_ms)?;
                self.write(&path, &current).map(|_| true)
            }
            None => Ok(false),
        })
    }

    pub fn destroy_blocking(&self, id: &SessionId) -> Result<()> {
        let path = self.path_of(id);
        self.locked(|_| {
            for file in [aside_path(&path), path.clone()] {
                match fs::remove_file(&file) {
                    Err(err) if err.kind() != ErrorKind::NotFound => {
                        return Err(self.io_error(&file, err))
                    }
                    _ => {}
                }
            }
            Ok(())
        })
    }

    /// One rename(2) under the lock: readers see the file under one name or the other.
    pub fn rename_blocking(&self, from: &SessionId, to: &SessionId, now_ms: i64) -> Result<bool> {
        let (source, target) = (self.path_of(from), self.path_of(to));
        self.with_live_locked(&source, now_ms, |current, _| {
            if current.is_none() {
                return Ok(false);
            }
            self.ready(&target, true)?;
            fs::rename(&source, &target).map_err(|e| self.io_error(&source, e))?;
            // A killed writer's aside file would give the old id its session back.
            let aside = aside_path(&source);
            match fs::remove_file(&aside) {
                Err(err) if err.kind() != ErrorKind::NotFound => Err(self.io_error(&aside, err)),
                _ => Ok(true),
            }
        })
    }

    /// Removes expired and unreadable session files and the temporary files of writers
    /// that died; files whose names are not the store's are never touched. Candidates are
    /// found without the lock and removed under it in small batches, each checked again,
    /// so a session rewritten meanwhile survives and writers never wait long. Writers make
    /// temporary files only while they hold the lock, so one seen under it is orphaned.
    pub fn gc_blocking(&self, now_ms: i64) -> Result<u64> {
        let mut removed = 0;
        let mut candidates = Vec::new();
        let mut asides = Vec::new();
        let mut temps = Vec::new();
        if !self.ready(&self.root.join("x"), false)? {
            return Ok(0);
        }
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(err) if err.kind() == ErrorKind::NotFound => continue,
                Err(err) => return Err(self.io_error(&dir, err)),
            };
            for entry in entries.flatten() {
                let (Ok(kind), Some(name)) = (
                    entry.file_type(),
                    entry.file_name().to_str().map(str::to_owned),
                ) else {
                    continue;
                };
                let path = entry.path();
                // A link is never followed: `kind` is the entry's own type.
                if kind.is_dir() {
                    let nested = matches!(self.layout, Layout::ThinkJs2 { .. });
                    if nested && name.len() == 1 && id::is_id_byte(name.as_bytes()[0]) {
                        // A prefix folder that is not private is left alone.
                        if self.folders.ensure(&path, false) == Ok(true) {
                            dirs.push(path);
                        }
                    }
                } else if name.starts_with('.') && name.ends_with(TEMP_SUFFIX) {
                    temps.push(path);
                } else if let Some(original) = name
                    .strip_prefix('.')
                    .and_then(|n| n.strip_suffix(ASIDE_SUFFIX))
                    .filter(|n| self.is_session_file(n))
                {
                    asides.push((path.with_file_name(original), path));
                } else if kind.is_file() && self.is_session_file(&name) {
                    // Files an earlier version made readable by others are closed to them.
                    if let Ok(meta) = entry.metadata() {
                        private::tighten_file(&path, &meta);
                    }
                    if self.is_dead(&path, now_ms) {
                        candidates.push(path);
                    }
                }
            }
        }
        // A file left aside by a writer killed mid-write goes back in place, or away
        // when the new one made it.
        for (path, aside) in &asides {
            self.locked(|_| {
                if path.exists() {
                    let _ = fs::remove_file(aside);
                } else if fs::rename(aside, path).is_ok() && self.is_dead(path, now_ms) {
                    candidates.push(path.clone());
                }
                Ok(())
            })?;
        }
        for batch in temps.chunks(256) {
            removed += self.locked(|_| {
                Ok(batch
                    .iter()
                    .filter(|path| fs::remove_file(path).is_ok())
                    .count() as u64)
            })?;
        }
        for batch in candidates.chunks(256) {
            removed += self.locked(|waited| {
                let now_ms = now_ms + waited;
                Ok(batch
                    .iter()
                    .filter(|path| self.is_dead(path, now_ms) && fs::remove_file(path).is_ok())
                    .count() as u64)
            })?;
        }
        Ok(removed)
    }

    /// Expired, or not a session at all; a file that cannot be read now is left alone.
    fn is_dead(&self, path: &Path, now_ms: i64) -> bool {
        match private::read_file(path) {
            Ok(Some(bytes)) => self
                .layout
                .decode(&bytes)
                .is_none_or(|r| !r.is_live(now_ms)),
            Ok(None) | Err(_) => false,
        }
    }

    fn is_session_file(&self, name: &str) -> bool {
        match self.layout {
            Layout::ThinkJs3 => id::is_valid(name),
            Layout::ThinkJs2 { .. } => name.strip_suffix(".json").is_some_and(id::is_valid),
        }
    }
}

/// Where a write puts the current file while it renames the new one into place.
fn aside_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("session");
    path.with_file_name(format!(".{name}{ASIDE_SUFFIX}"))
}

#[async_trait]
impl SessionStore for FileStore {
    fn runs(&self) -> Runs {
        Runs::Blocking
    }

    /// Only a refresh takes the lock.
    async fn load_data(
        &self,
        id: &SessionId,
        now_ms: i64,
        auto_update_rate: f64,
    ) -> Result<Option<Loaded>> {
        self.load_data_blocking(id, now_ms, auto_update_rate)
    }

    async fn load(&self, id: &SessionId, now_ms: i64) -> Result<Option<Record>> {
        self.load_blocking(id, now_ms)
    }

    async fn apply_patch(&self, id: &SessionId, patch: &Patch, now_ms: i64) -> Result<()> {
        self.apply_patch_blocking(id, patch, now_ms)
    }

    async fn touch(&self, id: &SessionId, max_age_ms: i64, now_ms: i64) -> Result<bool> {
        self.touch_blocking(id, max_age_ms, now_ms)
    }

    async fn destroy(&self, id: &SessionId) -> Result<()> {
        self.destroy_blocking(id)
    }

    async fn rename(&self, from: &SessionId, to: &SessionId, now_ms: i64) -> Result<bool> {
        self.rename_blocking(from, to, now_ms)
    }

    async fn gc(&self, now_ms: i64) -> Result<u64> {
        self.gc_blocking(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::DEFAULT_MAX_BYTES;

    fn store(dir: &Path, layout: Layout) -> FileStore {
        FileStore::new(FileOptions {
            root: dir.join("sessions"),
            layout,
            max_bytes: DEFAULT_MAX_BYTES,
            trust_folder: false,
        })
        .unwrap()
    }

    fn id(s: &str) -> SessionId {
        SessionId::parse(s).unwrap()
    }

    #[tokio::test]
    async fn meets_the_store_contract_in_both_layouts() {
        for layout in [Layout::ThinkJs3, Layout::ThinkJs2 { depth: 2 }] {
            let dir = tempfile::tempdir().unwrap();
            let store = store(dir.path(), layout);
            crate::store::conformance::check(&store).await;
            crate::store::conformance::check_gc(&store).await;
        }
    }

    #[test]
    fn writes_think_session_files_format_at_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), Layout::ThinkJs3);
        let patch = Patch::of(&[("user", r#""ann""#)], 1_000);
        s.apply_patch_blocking(&id("abcdefgh-1"), &patch, 5_000)
            .unwrap();
        let text = fs::read_to_string(dir.path().join("sessions/abcdefgh-1")).unwrap();
        // the expiry counts from the merge, which may wait for the lock a millisecond or so
        let expires: i64 = text[11..text.find(',').unwrap()].parse().unwrap();
        assert!((6_000..6_100).contains(&expires), "{text}");
        assert_eq!(
            text.replace(&expires.to_string(), "E"),
            r#"{"expires":E,"maxAge":1000,"data":{"user":"ann"}}"#
        );
    }

    #[test]
    fn writes_thinkjs2_format_at_its_nested_path() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), Layout::ThinkJs2 { depth: 2 });
        let patch = Patch::of(&[("user", r#""ann""#)], 3_600_000);
        s.apply_patch_blocking(&id("abcdefgh_2"), &patch, 5_000)
            .unwrap();
        let text = fs::read_to_string(dir.path().join("sessions/a/b/abcdefgh_2.json")).unwrap();
        let file: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            text.starts_with(r#"{"data":{"user":"ann"},"expire":"#),
            "{text}"
        );
        assert!((3_605_000..3_605_100).contains(&file["expire"].as_i64().unwrap()));
        assert_eq!(file["timeout"], 3600);
        // and reads what ThinkJS 2 wrote
        fs::create_dir_all(dir.path().join("sessions/x/y")).unwrap();
        fs::write(
            dir.path().join("sessions/x/y/xyzabcdefgh.json"),
            r#"{"data":{"n":1},"expire":99999999999999,"timeout":86400}"#,
        )
        .unwrap();
        let record = s.load_blocking(&id("xyzabcdefgh"), 0).unwrap().unwrap();
        assert_eq!(record.data, r#"{"n":1}"#);
        assert_eq!(record.max_age_ms, 86_400_000);
    }

    #[test]
    fn thinkjs2_timeout_rounds_up_to_whole_seconds() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), Layout::ThinkJs2 { depth: 1 });
        let patch = Patch::of(&[("a", "1")], 1_500);
        s.apply_patch_blocking(&id("roundingid"), &patch, 0)
            .unwrap();
        let text = fs::read_to_string(dir.path().join("sessions/r/roundingid.json")).unwrap();
        assert!(text.ends_with(r#""timeout":2}"#), "{text}");
    }

    #[test]
    fn corrupt_and_foreign_files_are_no_session_and_gc_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), Layout::ThinkJs3);
        let root = dir.path().join("sessions");
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("corrupt-session"), "{\"expires\":").unwrap();
        fs::write(root.join("foreign-session"), "[1,2,3]").unwrap();
        fs::write(
            root.join("arraydata-session"),
            r#"{"expires":99999999999999,"data":[1]}"#,
        )
        .unwrap();
        fs::write(root.join("not a session.txt"), "keep me").unwrap();
        for name in ["corrupt-session", "foreign-session", "arraydata-session"] {
            assert!(s.load_blocking(&id(name), 0).unwrap().is_none(), "{name}");
        }
        // a write over a corrupt file starts afresh
        let patch = Patch::of(&[("a", "1")], 1_000);
        s.apply_patch_blocking(&id("corrupt-session"), &patch, 0)
            .unwrap();
        assert_eq!(
            s.load_blocking(&id("corrupt-session"), 1)
                .unwrap()
                .unwrap()
                .data,
            r#"{"a":1}"#
        );
        assert_eq!(s.gc_blocking(1).unwrap(), 2);
        assert!(
            root.join("not a session.txt").exists(),
            "files that are not sessions stay"
        );
        assert!(
            root.join("corrupt-session").exists(),
            "the rewritten session stays"
        );
    }

    #[test]
    fn gc_removes_temporary_files_writers_left() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), Layout::ThinkJs3);
        let root = dir.path().join("sessions");
        fs::create_dir_all(&root).unwrap();
        // pid 4194305 is above the Linux maximum: no process has it
        fs::write(root.join(".abcdefgh.4194305.0.tmp"), "{\"expi").unwrap();
        let own = format!(".abcdefgh.{}.1.tmp", std::process::id());
        fs::write(root.join(&own), "{").unwrap();
        fs::write(root.join("keep.tmp"), "not ours").unwrap();
        assert_eq!(s.gc_blocking(0).unwrap(), 2);
        assert!(!root.join(own).exists());
        assert!(
            root.join("keep.tmp").exists(),
            "only the store's own names go"
        );
    }

    #[test]
    fn a_file_left_aside_by_a_killed_writer_is_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), Layout::ThinkJs3);
        let root = dir.path().join("sessions");
        fs::create_dir_all(&root).unwrap();
        let content = r#"{"expires":99999999999999,"maxAge":1000,"data":{"kept":true}}"#;
        // killed between its two renames: the old file aside, no new one in place
        fs::write(root.join(".aside-session.old"), content).unwrap();
        let record = s.load_blocking(&id("aside-session"), 0).unwrap().unwrap();
        assert_eq!(record.data, r#"{"kept":true}"#);
        assert!(root.join("aside-session").exists());
        assert!(!root.join(".aside-session.old").exists());
        // gc does the same, and drops an aside file whose new version made it
        fs::write(root.join(".gc-aside-session.old"), content).unwrap();
        fs::write(root.join(".aside-session.old"), content).unwrap();
        s.gc_blocking(0).unwrap();
        assert!(root.join("gc-aside-session").exists());
        let mut left: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["aside-session", "gc-aside-session"]);
    }

    #[test]
    fn rename_leaves_nothing_under_the_old_id_in_both_layouts() {
        for layout in [Layout::ThinkJs3, Layout::ThinkJs2 { depth: 2 }] {
            let dir = tempfile::tempdir().unwrap();
            let s = store(dir.path(), layout);
            let (from, to) = (id("renamed-from"), id("renamed-to"));
            let patch = Patch::new(60_000).unwrap();
            s.apply_patch_blocking(&from, &patch, 0).unwrap();
            s.apply_patch_blocking(&from, &Patch::of(&[("k", "1")], 60_000), 0)
                .unwrap();
            // a writer killed after putting its file in place, before removing the old one
            let old = s.path_of(&from);
            fs::write(
                aside_path(&old),
                layout.encode(&s.load_blocking(&from, 0).unwrap().unwrap()),
            )
            .unwrap();
            assert!(s.rename_blocking(&from, &to, 1).unwrap());
            assert!(s.load_blocking(&from, 1).unwrap().is_none());
            assert!(!aside_path(&old).exists(), "{layout:?}");
            assert_eq!(s.load_blocking(&to, 1).unwrap().unwrap().data, r#"{"k":1}"#);
            s.gc_blocking(1).unwrap();
            assert!(
                s.load_blocking(&from, 1).unwrap().is_none(),
                "gc brings nothing back"
            );
        }
    }

    #[test]
    fn rejects_relative_paths_and_deep_layouts() {
        let relative = FileStore::new(FileOptions {
            root: PathBuf::from("runtime/session"),
            layout: Layout::ThinkJs3,
            max_bytes: 10,
            trust_folder: false,
        });
        assert_eq!(
            relative.err().unwrap().code().as_str(),
            "ERR_SESSION_OPTIONS"
        );
        let deep = FileStore::new(FileOptions {
            root: PathBuf::from("/tmp/x"),
            layout: Layout::ThinkJs2 { depth: 9 },
            max_bytes: 10,
            trust_folder: false,
        });
        assert_eq!(deep.err().unwrap().code().as_str(), "ERR_SESSION_OPTIONS");
    }

    #[test]
    fn concurrent_writers_of_distinct_keys_all_survive() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(store(dir.path(), Layout::ThinkJs3));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for k in 0..25 {
                        let patch = Patch::of(&[(&format!("t{t}k{k}"), &k.to_string())], 60_000);
                        s.apply_patch_blocking(&id("shared-session"), &patch, 0)
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let data: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            &s.load_blocking(&id("shared-session"), 1)
                .unwrap()
                .unwrap()
                .data,
        )
        .unwrap();
        assert_eq!(data.len(), 200);
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("sessions")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files are left behind");
    }

    #[test]
    fn a_folder_that_cannot_be_made_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        let options = |root: PathBuf| FileOptions {
            root,
            layout: Layout::ThinkJs3,
            max_bytes: 100,
            trust_folder: false,
        };
        // known at creation: the handle fails
        fs::write(&file, "x").unwrap();
        let err = FileStore::new(options(file.join("sessions")))
            .err()
            .unwrap();
        assert_eq!(err.code().as_str(), "ERR_SESSION_OPTIONS");
        assert!(err.to_string().contains("plain-file"), "{err}");
        // known on first use: the call fails
        let later = dir.path().join("later");
        let s = FileStore::new(options(later.join("sessions"))).unwrap();
        fs::write(&later, "x").unwrap();
        let patch = Patch::of(&[("a", "1")], 1_000);
        let err = s
            .apply_patch_blocking(&id("abcdefgh"), &patch, 0)
            .unwrap_err();
        assert_eq!(err.code().as_str(), "ERR_SESSION_STORE");
        assert!(err.to_string().contains("later"), "{err}");
    }

    #[test]
    fn folders_and_files_are_the_owners_alone_and_links_are_never_followed() {
        use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| fs::symlink_metadata(p).unwrap().mode() & 0o777;
        for layout in [Layout::ThinkJs3, Layout::ThinkJs2 { depth: 2 }] {
            let base = dir.path().join(format!("{layout:?}").replace(' ', ""));
            let s = store(&base, layout);
            let root = base.join("sessions");
            let a = id("private-session");
            s.apply_patch_blocking(&a, &Patch::of(&[("k", "1")], 60_000), 0)
                .unwrap();
            assert_eq!(mode(&root), 0o700);
            assert_eq!(mode(root.parent().unwrap()), 0o700);
            let file = s.path_of(&a);
            assert_eq!(mode(&file), 0o600);
            assert_eq!(mode(file.parent().unwrap()), 0o700);
            // a link planted under a session's name is an error for that session alone
            let outside = dir.path().join(format!("outside-{}", mode(&root)));
            let record = r#"{"expires":9999999999999,"maxAge":1,"data":{"admin":true}}"#;
            fs::write(&outside, record).unwrap();
            let b = id("planted-link");
            let planted = s.path_of(&b);
            fs::create_dir_all(planted.parent().unwrap()).unwrap();
            symlink(&outside, &planted).unwrap();
            let err = s.load_blocking(&b, 0).unwrap_err();
            assert!(err.to_string().contains("symbolic link"), "{err}");
            let patch = Patch::of(&[("x", "1")], 60_000);
            assert!(s.apply_patch_blocking(&b, &patch, 0).is_err());
            assert!(s.load_blocking(&a, 0).unwrap().is_some());
            // gc at a time the linked record would be expired: it is not reached
            s.gc_blocking(i64::MAX / 2).unwrap();
            assert_eq!(fs::read_to_string(&outside).unwrap(), record);
            assert!(fs::symlink_metadata(&planted).is_ok());
        }
        // An earlier version's folder (0755) and file (0644): the folder is closed when the
        // store opens, the file by gc.
        let old = dir.path().join("old/sessions");
        fs::create_dir_all(&old).unwrap();
        fs::set_permissions(&old, fs::Permissions::from_mode(0o755)).unwrap();
        let file = old.join("old-session-file");
        let record = r#"{"expires":9999999999999,"maxAge":1000,"data":{"k":1}}"#;
        fs::write(&file, record).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let s = store(old.parent().unwrap(), Layout::ThinkJs3);
        assert_eq!(mode(&old), 0o700);
        s.gc_blocking(0).unwrap();
        assert_eq!(mode(&file), 0o600);
        let data = s
            .load_blocking(&id("old-session-file"), 0)
            .unwrap()
            .unwrap()
            .data;
        assert_eq!(data, r#"{"k":1}"#);
        assert_eq!(fs::metadata(&file).unwrap().uid(), unsafe {
            libc::geteuid()
        });
    }

    #[test]
    fn a_folder_others_may_write_in_is_refused_unless_trusted() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        let options = |trust_folder| FileOptions {
            root: shared.clone(),
            layout: Layout::ThinkJs3,
            max_bytes: 100,
            trust_folder,
        };
        let err = FileStore::new(options(false)).err().unwrap();
        assert_eq!(err.code().as_str(), "ERR_SESSION_OPTIONS");
        assert!(err.to_string().contains("mode 0777"), "{err}");
        // made after the handle: every call refuses it
        let s = store(&dir.path().join("later"), Layout::ThinkJs3);
        let later = dir.path().join("later/sessions");
        fs::create_dir_all(&later).unwrap();
        fs::set_permissions(&later, fs::Permissions::from_mode(0o777)).unwrap();
        let err = s.load_blocking(&id("abcdefgh"), 0).unwrap_err();
        assert_eq!(err.code().as_str(), "ERR_SESSION_STORE");
        assert!(err.to_string().contains("trustFolder"), "{err}");
        let trusted = FileStore::new(options(true)).unwrap();
        let patch = Patch::of(&[("a", "1")], 60_000);
        trusted
            .apply_patch_blocking(&id("abcdefgh"), &patch, 0)
            .unwrap();
    }
}
