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
use std::io::Read;
use std::path::Path;

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

/// Reads a whole regular file of at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
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
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            len: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
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
}
