//! Folders and files that only the process's user can reach. Session files are logins: a
//! user of the host who can list the folder learns the ids, one who can read a file takes
//! the session, and one who can write in the folder plants a session of their choosing
//! under an id of their choosing. So the stores that write to disk make folders 0700 and
//! files 0600 whatever the umask, refuse a folder that someone else owns or may write in
//! (unless the operator says `trustFolder`), and never follow a symbolic link to a session.

use std::collections::HashSet;
use std::fs::{self, DirBuilder, File, Metadata, OpenOptions, Permissions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

pub const FOLDER_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// The folders a store uses, each checked once per process before its first use.
pub struct PrivateFolders {
    /// The operator's `trustFolder`: a folder owned by someone else, open to others or
    /// reached through a link is used as it is.
    trust: bool,
    /// Folders that hold nothing but sessions are closed to others (an earlier version made
    /// them 0755); a folder shared with the app's other files (SQLite's) is only checked.
    close: bool,
    checked: RwLock<HashSet<PathBuf>>,
}

impl PrivateFolders {
    /// Folders of session files: made 0700, and closed to others when found open to them.
    pub fn sessions(trust: bool) -> Self {
        Self::new(trust, true)
    }

    /// A folder that holds a session file among others (SQLite's): made 0700 when missing,
    /// otherwise only checked.
    pub fn shared(trust: bool) -> Self {
        Self::new(trust, false)
    }

    fn new(trust: bool, close: bool) -> Self {
        PrivateFolders {
            trust,
            close,
            checked: RwLock::new(HashSet::new()),
        }
    }

    /// Makes sure `dir` is a folder only this user reaches: with `create`, made 0700 when
    /// missing; a folder of session files of ours that others may read (an earlier version
    /// made 0755) is closed to them. False when it is missing and `create` is off (nothing to read). The
    /// error says what is wrong and how to fix it. Once a folder has passed, no one else can
    /// change it, so it is not checked again.
    pub fn ensure(&self, dir: &Path, create: bool) -> Result<bool, String> {
        if self
            .checked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(dir)
        {
            return Ok(true);
        }
        let meta = match fs::symlink_metadata(dir) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound && create => {
                create_folder(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                // Made now, or by someone else in the meantime: judged the same way.
                fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(err) => return Err(format!("{}: {err}", dir.display())),
        };
        if !self.trust {
            check_folder(dir, &meta)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                check_parent(parent, dir)?;
            }
            if self.close && meta.mode() & 0o077 != 0 {
                fs::set_permissions(dir, Permissions::from_mode(FOLDER_MODE)).map_err(|e| {
                    format!("cannot make {} private (chmod 700): {e}", dir.display())
                })?;
            }
        }
        self.checked
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dir.to_owned());
        Ok(true)
    }
}

/// The process's effective user.
fn this_user() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Why `dir` (as `meta` describes it) is no place for sessions, with the command that fixes it.
pub fn check_folder(dir: &Path, meta: &Metadata) -> Result<(), String> {
    let shown = dir.display();
    let user = this_user();
    let problem = if meta.file_type().is_symlink() {
        let target = fs::read_link(dir).map_or_else(|_| "?".into(), |t| t.display().to_string());
        format!("a symbolic link (to {target})")
    } else if !meta.is_dir() {
        "not a folder".to_owned()
    } else if meta.uid() != user {
        format!(
            "owned by uid {}, not by this process's user (uid {user}), with mode {:04o}",
            meta.uid(),
            meta.mode() & 0o7777
        )
    } else if meta.mode() & 0o022 != 0 {
        format!(
            "writable by other users (mode {:04o})",
            meta.mode() & 0o7777
        )
    } else {
        return Ok(());
    };
    let fix = if meta.file_type().is_symlink() || !meta.is_dir() {
        format!("point the store at a folder of its own (`mkdir -m 700 <folder>` as uid {user})")
    } else {
        format!("`chown {user} {shown} && chmod 700 {shown}` if it is the app's, or point the store at a folder of its own")
    };
    Err(format!(
        "{shown} is {problem}: other users of this host could read the sessions in it or plant \
         one; {fix}, or set `trustFolder: true` to accept it knowingly"
    ))
}

/// Whoever may rename entries in `parent` may put another folder, or a link, in `dir`'s
/// place: the parent must be this user's or root's and closed to others' writes, unless it
/// is a sticky shared folder such as /tmp or /dev/shm (where only an entry's owner may
/// rename it).
fn check_parent(parent: &Path, dir: &Path) -> Result<(), String> {
    let meta = fs::metadata(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let user = this_user();
    let owner_ok = meta.uid() == user || meta.uid() == 0;
    let sticky = meta.mode() & 0o1000 != 0;
    let open = meta.mode() & 0o022 != 0 && !sticky;
    if owner_ok && !open {
        return Ok(());
    }
    Err(format!(
        "{} holds {} and is {}: whoever may write in it could put another folder or a link in \
         its place; keep the store in a folder whose parent is yours (`chmod go-w {}`), or set \
         `trustFolder: true` to accept it knowingly",
        parent.display(),
        dir.display(),
        if owner_ok {
            format!(
                "writable by other users (mode {:04o})",
                meta.mode() & 0o7777
            )
        } else {
            format!(
                "owned by uid {}, not by this process's user (uid {user}) or root",
                meta.uid()
            )
        },
        parent.display()
    ))
}

/// Makes `dir` and any missing parents 0700, whatever the umask.
pub fn create_folder(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(FOLDER_MODE)
        .create(dir)
}

/// A new file, 0600 whatever the umask, created only where no file or link is.
pub fn create_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// The bytes of `path`, which must not be a symbolic link; none when there is no file.
pub fn read_file(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    let mut file = match opened {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
            return Err(io::Error::other(
                "a symbolic link where a session file should be: sessions are never read \
                 through a link; remove it",
            ))
        }
        Err(err) => return Err(err),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// A SQLite database file made 0600 before SQLite opens it (SQLite gives its `-wal` and
/// `-shm` files the database file's mode); one of ours that others may read is closed to
/// them, with those files. A link in its place is refused.
pub fn prepare_database(path: &Path) -> io::Result<()> {
    match create_file(path) {
        Ok(_) => return Ok(()),
        Err(err) if err.kind() != io::ErrorKind::AlreadyExists => {
            return Err(if err.raw_os_error() == Some(libc::ELOOP) {
                io::Error::other("a symbolic link where the database file should be; remove it")
            } else {
                err
            })
        }
        Err(_) => {}
    }
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Err(io::Error::other(
            "a symbolic link where the database file should be; remove it",
        ));
    }
    tighten_file(path, &meta);
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let companion = PathBuf::from(name);
        if let Ok(meta) = fs::symlink_metadata(&companion) {
            tighten_file(&companion, &meta);
        }
    }
    Ok(())
}

/// Closes a file of ours that others may read (written by an earlier version) to them.
pub fn tighten_file(path: &Path, meta: &Metadata) {
    if meta.is_file() && meta.uid() == this_user() && meta.mode() & 0o077 != 0 {
        let _ = fs::set_permissions(path, Permissions::from_mode(FILE_MODE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_folders_others_own_or_may_write_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let folders = PrivateFolders::sessions(false);
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, Permissions::from_mode(0o777)).unwrap();
        let err = folders.ensure(&open, true).unwrap_err();
        assert!(err.contains("writable by other users (mode 0777)"), "{err}");
        assert!(err.contains("chmod 700"), "{err}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&open, &link).unwrap();
        let err = folders.ensure(&link, true).unwrap_err();
        assert!(err.contains("a symbolic link"), "{err}");
        // trusted knowingly
        assert!(PrivateFolders::sessions(true).ensure(&open, true).unwrap());
        // a folder of ours inside one that others may write in (not sticky) is refused too
        let inside = open.join("ours");
        fs::create_dir(&inside).unwrap();
        fs::set_permissions(&inside, Permissions::from_mode(0o700)).unwrap();
        let err = folders.ensure(&inside, false).unwrap_err();
        assert!(err.contains("could put another folder"), "{err}");
        // ... and inside a sticky shared one (as /tmp, /dev/shm) accepted
        let sticky = dir.path().join("sticky");
        fs::create_dir(&sticky).unwrap();
        fs::set_permissions(&sticky, Permissions::from_mode(0o1777)).unwrap();
        assert!(folders.ensure(&sticky.join("ours"), true).unwrap());
        // one whose parent another user owns is refused
        let theirs = dir.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        let err = folders.ensure(&theirs.join("ours"), true).unwrap_err();
        assert!(err.contains("owned by uid 65534"), "{err}");
    }

    #[test]
    fn creates_folders_0700_and_closes_ours_to_others() {
        let dir = tempfile::tempdir().unwrap();
        let folders = PrivateFolders::sessions(false);
        let made = dir.path().join("a/b");
        assert!(!folders.ensure(&made, false).unwrap());
        assert!(folders.ensure(&made, true).unwrap());
        assert_eq!(fs::metadata(&made).unwrap().mode() & 0o777, 0o700);
        let old = dir.path().join("old");
        fs::create_dir(&old).unwrap();
        fs::set_permissions(&old, Permissions::from_mode(0o755)).unwrap();
        assert!(folders.ensure(&old, false).unwrap());
        assert_eq!(fs::metadata(&old).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn files_are_0600_and_never_read_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        create_file(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let secret = dir.path().join("secret");
        fs::write(&secret, "{}").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let err = read_file(&link).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(create_file(&link).is_err());
        assert_eq!(fs::read_to_string(&secret).unwrap(), "{}");
    }
}
