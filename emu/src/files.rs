//! Reading input files: only regular files, and only up to a size limit.
//!
//! Every file the emulator reads (scenarios, code files, traces) comes through
//! here, so one rule holds for all of them: a path that names a directory, a
//! FIFO, a socket or a device (`/dev/zero`) is refused from its metadata before
//! it is opened — opening a FIFO would block until a writer appears, reading a
//! device may never end — and a file larger than its limit is refused before a
//! byte is read. The read itself is bounded too, so a file that grows between the
//! check and the read cannot push past the limit.

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a file was not read.
#[derive(Debug)]
pub enum ReadError {
    /// The file cannot be inspected or read (missing, no permission, ...).
    Io(std::io::Error),
    /// The path names a directory.
    Directory,
    /// The path names something other than a regular file or a directory.
    NotRegular(&'static str),
    /// The file is larger than the limit.
    TooLarge {
        /// Its size in bytes (at least this much when it grew during the read).
        len: u64,
        /// The limit in bytes.
        limit: u64,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Directory => write!(f, "is a directory, not a file"),
            ReadError::NotRegular(what) => {
                write!(f, "is {what}, not a regular file (expected a file on disk)")
            }
            ReadError::TooLarge { len, limit } => {
                write!(f, "is {len} bytes; the limit is {limit}")
            }
        }
    }
}

impl std::error::Error for ReadError {}

/// What kind of non-regular file `t` is, for messages.
fn kind_name(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

/// Opens a regular file of at most `limit` bytes for reading, with the checks
/// [`read_regular`] makes, and returns it with its length. The handle reads at
/// most `limit + 1` bytes, so a caller that reads it to the end and finds more
/// than `limit` knows the file grew past the limit.
pub fn open_regular(path: &Path, limit: u64) -> Result<(std::io::Take<File>, u64), ReadError> {
    let meta = std::fs::metadata(path).map_err(ReadError::Io)?;
    let t = meta.file_type();
    if t.is_dir() {
        return Err(ReadError::Directory);
    }
    if !t.is_file() {
        return Err(ReadError::NotRegular(kind_name(t)));
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge {
            len: meta.len(),
            limit,
        });
    }
    let file = File::open(path).map_err(ReadError::Io)?;
    Ok((file.take(limit.saturating_add(1)), meta.len()))
}

/// Reads a whole regular file of at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let (mut file, len) = open_regular(path, limit)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.read_to_end(&mut bytes).map_err(ReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            len: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// Why an output file could not be written.
#[derive(Debug)]
pub enum WriteError {
    /// The target exists and replacing it was not asked for.
    Exists(PathBuf),
    /// The file system said no.
    Io {
        /// The file being written (the target, or a temporary file beside it).
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Exists(p) => write!(
                f,
                "{}: error: the file exists; refusing to overwrite it (pass --force to replace it)",
                p.display()
            ),
            WriteError::Io { path, source } => write!(f, "{}: error: {source}", path.display()),
        }
    }
}

impl std::error::Error for WriteError {}

/// Distinguishes temporary files of one process (the process id does the rest).
static TEMP_SERIAL: AtomicU64 = AtomicU64::new(0);

/// A fresh file beside `target`, named after it, created exclusively (never
/// an existing file). The name is hidden (`.NAME.WHAT-PID-N`) so a directory
/// listing during a long run does not look like a finished output.
fn temp_beside(target: &Path, what: &str) -> Result<(PathBuf, File), WriteError> {
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let io = |path: &Path, source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    };
    loop {
        let n = TEMP_SERIAL.fetch_add(1, Ordering::Relaxed);
        let p = dir.join(format!(".{name}.{what}-{}-{n}", std::process::id()));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(&p, e)),
        }
    }
}

/// An output file written through a temporary file beside it and moved into
/// place only by [`NewFile::commit`]: a run that fails or is abandoned half way
/// leaves the target as it was (dropping an uncommitted `NewFile` removes the
/// temporary file). Writes are buffered.
#[derive(Debug)]
pub struct NewFile {
    target: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
}

impl NewFile {
    /// Starts writing `target`.
    pub fn create(target: &Path) -> Result<Self, WriteError> {
        let (tmp, f) = temp_beside(target, "tmp")?;
        Ok(NewFile {
            target: target.to_path_buf(),
            tmp,
            out: Some(BufWriter::with_capacity(1 << 16, f)),
        })
    }

    /// Appends bytes.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        let tmp = &self.tmp;
        match self.out.as_mut() {
            Some(w) => w.write_all(bytes).map_err(|source| WriteError::Io {
                path: tmp.clone(),
                source,
            }),
            None => Ok(()),
        }
    }

    /// Appends everything a spool holds, from its start.
    pub fn append(&mut self, spool: &mut Spool) -> Result<(), WriteError> {
        let f = spool.rewind()?;
        let Some(w) = self.out.as_mut() else {
            return Ok(());
        };
        let tmp = &self.tmp;
        std::io::copy(f, w)
            .map(|_| ())
            .map_err(|source| WriteError::Io {
                path: tmp.clone(),
                source,
            })
    }

    /// Moves the finished file into place. Without `force` an existing target
    /// is an error and is left alone (the file is linked in under the target's
    /// name, which fails if that name exists, so a race cannot clobber one).
    pub fn commit(mut self, force: bool) -> Result<(), WriteError> {
        let tmp = self.tmp.clone();
        let io = |path: &Path, source| WriteError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(w) = self.out.take() {
            let f = w.into_inner().map_err(|e| io(&tmp, e.into_error()))?;
            f.sync_all().map_err(|e| io(&tmp, e))?;
        }
        if force {
            std::fs::rename(&tmp, &self.target).map_err(|e| io(&self.target, e))?;
        } else {
            match std::fs::hard_link(&tmp, &self.target) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&tmp);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(WriteError::Exists(self.target.clone()))
                }
                // A file system without hard links: check, then rename.
                Err(_) if !self.target.exists() => {
                    std::fs::rename(&tmp, &self.target).map_err(|e| io(&self.target, e))?
                }
                Err(_) => return Err(WriteError::Exists(self.target.clone())),
            }
        }
        // Nothing left for Drop to remove.
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            self.out = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Scratch space for part of an output that is written before it can be
/// placed (a trace's events come before its header can be written): a
/// temporary file beside the output, removed when dropped.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    out: BufWriter<File>,
}

impl Spool {
    /// A new empty spool beside `target`.
    pub fn beside(target: &Path, what: &str) -> Result<Self, WriteError> {
        let (path, f) = temp_beside(target, what)?;
        Ok(Spool {
            path,
            out: BufWriter::with_capacity(1 << 16, f),
        })
    }

    /// Appends bytes.
    #[inline]
    pub fn append_bytes(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        let path = &self.path;
        self.out.write_all(bytes).map_err(|source| WriteError::Io {
            path: path.clone(),
            source,
        })
    }

    /// The file, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and returns the file positioned at its start.
    fn rewind(&mut self) -> Result<&mut File, WriteError> {
        let path = &self.path;
        let io = |source| WriteError::Io {
            path: path.clone(),
            source,
        };
        self.out.flush().map_err(io)?;
        let f = self.out.get_mut();
        f.rewind().map_err(io)?;
        Ok(f)
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_directories_are_refused_without_reading() {
        assert!(matches!(
            read_regular(Path::new("/dev/zero"), 1 << 20),
            Err(ReadError::NotRegular("a character device"))
        ));
        assert!(matches!(
            read_regular(Path::new("/"), 1 << 20),
            Err(ReadError::Directory)
        ));
    }

    #[test]
    fn the_limit_is_checked() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        assert!(read_regular(&p, 1 << 20).is_ok());
        assert!(matches!(
            read_regular(&p, 4),
            Err(ReadError::TooLarge { limit: 4, .. })
        ));
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("emu-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let _ = std::fs::create_dir_all(&d);
        d
    }

    fn names(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn new_file_appears_only_on_commit_and_never_replaces_without_force() {
        let d = scratch("newfile");
        let t = d.join("out.txt");
        let mut f = NewFile::create(&t).unwrap();
        let mut sp = Spool::beside(&t, "spool").unwrap();
        sp.append_bytes(b"tail\n").unwrap();
        f.write_all(b"head\n").unwrap();
        f.append(&mut sp).unwrap();
        assert!(!t.exists(), "the target appears before the commit");
        f.commit(false).unwrap();
        drop(sp);
        assert_eq!(
            std::fs::read_to_string(&t).ok().as_deref(),
            Some("head\ntail\n")
        );
        assert_eq!(names(&d), vec!["out.txt".to_string()]);
        // An existing file stays without force, and is replaced with it.
        let mut g = NewFile::create(&t).unwrap();
        g.write_all(b"new").unwrap();
        assert!(matches!(g.commit(false), Err(WriteError::Exists(_))));
        assert_eq!(
            std::fs::read_to_string(&t).ok().as_deref(),
            Some("head\ntail\n")
        );
        let mut g = NewFile::create(&t).unwrap();
        g.write_all(b"new").unwrap();
        g.commit(true).unwrap();
        assert_eq!(std::fs::read_to_string(&t).ok().as_deref(), Some("new"));
        // Abandoned: nothing is left behind.
        let mut h = NewFile::create(&d.join("other.txt")).unwrap();
        h.write_all(b"x").unwrap();
        drop(h);
        assert_eq!(names(&d), vec!["out.txt".to_string()]);
        let _ = std::fs::remove_dir_all(&d);
    }
}
