//! What a dynamic ELF program needs from the filesystem: its interpreter (`PT_INTERP`) and the
//! libraries it names (`DT_NEEDED`), recursively, resolved the way the dynamic loader will in a
//! program root where `/etc/ld.so.cache` does not exist: `DT_RPATH` (only when the object has no
//! `DT_RUNPATH`; the executable's for every object), then `DT_RUNPATH` of the object, then the
//! directories `/etc/ld.so.conf` lists (what the host's `ld.so.cache` is built from, in its
//! order), then the loader's default directories. A library found only in an `ld.so.conf`
//! directory is shown at the first default directory, where the loader of the root (which has
//! no cache) will look for it. Read with `goblin`, never executed.
//!
//! Limits, each documented in docs/HOW-IT-WORKS.md: `$ORIGIN` of the *executable* is skipped
//! (the loader reads `/proc/self/exe` for it, and a program root has no `/proc`); `$ORIGIN` of a
//! library is its directory in the root; `$LIB` and `$PLATFORM` entries are skipped;
//! `LD_LIBRARY_PATH` is not read (the environment is the user's and cleared by default); a
//! candidate of another ELF class or machine is passed over, as the loader does.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Component, Path, PathBuf};

/// The loader's default directories when there is no `ld.so.cache`, in its order: Debian's and
/// Ubuntu's multiarch directories (what `ld.so --help` prints on x86_64 there), then the
/// `lib64` directories of Fedora and Arch, then the plain ones.
pub const DEFAULT_LIBRARY_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// Largest ELF table read: the program headers, the dynamic section, the dynamic string table
/// (each is a few KiB in real programs and libraries; the rest of a file is never read).
pub const MAX_ELF_TABLE_BYTES: u64 = 1 << 20;
/// Most libraries one program may pull in.
pub const MAX_LIBRARIES: usize = 512;
/// Most directories of an object's own `DT_RPATH`/`DT_RUNPATH` searched for one library.
const MAX_SEARCH_DIRS: usize = 64;

/// Reading or resolving an ELF's dependencies failed.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// The file could not be read.
    #[error("read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// One of the file's ELF tables is larger than [`MAX_ELF_TABLE_BYTES`].
    #[error("{path} has an ELF table larger than {MAX_ELF_TABLE_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file is not an ELF object goblin can read.
    #[error("{path} is not a readable ELF file: {reason}")]
    NotElf {
        /// The file.
        path: PathBuf,
        /// goblin's message.
        reason: String,
    },
    /// The interpreter path is not absolute and clean, or not an ELF file of the program's
    /// class and machine.
    #[error("{path} names an interpreter that is not a clean absolute path to an ELF file of its own kind: {interp:?}")]
    BadInterpreter {
        /// The program.
        path: PathBuf,
        /// What it names.
        interp: String,
    },
    /// A needed library was found in no search directory.
    #[error("library {name} (needed by {by}) is in no search directory")]
    NotFound {
        /// The `DT_NEEDED` name.
        name: String,
        /// The object that needs it.
        by: PathBuf,
    },
    /// More than [`MAX_LIBRARIES`] libraries.
    #[error("more than {MAX_LIBRARIES} libraries")]
    TooMany,
}

/// What one ELF file says about loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// `PT_INTERP`, when the file is dynamically linked.
    pub interpreter: Option<String>,
    /// `DT_NEEDED`, in order.
    pub needed: Vec<String>,
    /// `DT_RUNPATH` entries.
    pub runpath: Vec<String>,
    /// `DT_RPATH` entries.
    pub rpath: Vec<String>,
    /// ELF class (64-bit) and machine, which every library must share.
    pub is_64: bool,
    /// `e_machine`.
    pub machine: u16,
}

/// Reads `path`'s loading information from its ELF header, program headers, dynamic section and
/// dynamic string table alone (by `pread`, each capped at [`MAX_ELF_TABLE_BYTES`]), never the
/// whole file: `PT_INTERP`, and the `DT_NEEDED`, `DT_RUNPATH` and `DT_RPATH` strings.
pub fn read_elf(path: &Path) -> Result<ElfInfo, ElfError> {
    let elf = ElfTables::open(path)?;
    let interpreter = elf.interpreter()?;
    let strings = elf.dynamic_strings()?;
    Ok(ElfInfo {
        interpreter,
        needed: strings.needed,
        runpath: search_list(&strings.runpath),
        rpath: search_list(&strings.rpath),
        is_64: elf.ctx.container.is_big(),
        machine: elf.header.e_machine,
    })
}

/// The directories of `DT_RPATH`/`DT_RUNPATH` entries (each a `:`-separated list), in order.
fn search_list(entries: &[impl AsRef<str>]) -> Vec<String> {
    entries
        .iter()
        .flat_map(|s| s.as_ref().split(':'))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The strings of an object's dynamic section that loading needs.
#[derive(Default)]
struct DynamicStrings {
    needed: Vec<String>,
    runpath: Vec<String>,
    rpath: Vec<String>,
}

/// Only `path`'s `PT_INTERP` (`None`: statically linked), from its ELF header and program
/// headers alone: whether a program needs its interpreter and libraries mounted at all.
pub fn read_interpreter(path: &Path) -> Result<Option<String>, ElfError> {
    ElfTables::open(path)?.interpreter()
}

/// [`read_interpreter`] of a file the caller has open (`path` names it in errors): what is
/// decided about a program then holds for the very file that will be executed, not for whatever
/// its path names a moment later. Fails as not ELF unless it is a regular file.
pub fn read_interpreter_of(path: &Path, file: &std::fs::File) -> Result<Option<String>, ElfError> {
    ElfTables::from_file(path, Handle::Borrowed(file))?.interpreter()
}

/// An open ELF file with its header and program headers read (goblin parses both).
struct ElfTables<'p> {
    path: &'p Path,
    file: Handle<'p>,
    header: goblin::elf::Header,
    ctx: goblin::container::Ctx,
    segments: Vec<goblin::elf::ProgramHeader>,
}

/// The file an [`ElfTables`] reads: opened by it, or the caller's.
enum Handle<'p> {
    Owned(std::fs::File),
    Borrowed(&'p std::fs::File),
}

impl std::ops::Deref for Handle<'_> {
    type Target = std::fs::File;

    fn deref(&self) -> &std::fs::File {
        match self {
            Handle::Owned(file) => file,
            Handle::Borrowed(file) => file,
        }
    }
}

impl<'p> ElfTables<'p> {
    /// Opens `path` only if it is a regular file: a program's `DT_NEEDED` names and `DT_RPATH`
    /// may point anywhere, and opening a device node or a FIFO would act on it or block. Checked
    /// before the open (no device is ever opened for this) and again on the open file.
    fn open(path: &'p Path) -> Result<Self, ElfError> {
        use std::os::unix::fs::OpenOptionsExt;
        let read_error = |source| ElfError::Read {
            path: path.to_owned(),
            source,
        };
        let not_regular = || ElfError::NotElf {
            path: path.to_owned(),
            reason: "not a regular file".to_owned(),
        };
        if !std::fs::metadata(path).map_err(read_error)?.is_file() {
            return Err(not_regular());
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(path)
            .map_err(read_error)?;
        Self::from_file(path, Handle::Owned(file))
    }

    /// Reads the headers of `file` (named `path` in errors), a regular file or an error.
    fn from_file(path: &'p Path, file: Handle<'p>) -> Result<Self, ElfError> {
        let read_error = |source| ElfError::Read {
            path: path.to_owned(),
            source,
        };
        if !file.metadata().map_err(read_error)?.is_file() {
            return Err(ElfError::NotElf {
                path: path.to_owned(),
                reason: "not a regular file".to_owned(),
            });
        }
        let mut head = [0u8; 64];
        let got = read_at(&file, &mut head, 0).map_err(|source| ElfError::Read {
            path: path.to_owned(),
            source,
        })?;
        let not_elf = |e: goblin::error::Error| ElfError::NotElf {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let header = goblin::elf::Elf::parse_header(&head[..got]).map_err(not_elf)?;
        let ctx = goblin::container::Ctx::new(
            header.container().map_err(not_elf)?,
            header.endianness().map_err(not_elf)?,
        );
        let mut tables = ElfTables {
            path,
            file,
            header,
            ctx,
            segments: Vec::new(),
        };
        let len = u64::from(header.e_phentsize) * u64::from(header.e_phnum);
        let table = tables.read(header.e_phoff, len)?;
        tables.segments =
            goblin::elf::ProgramHeader::parse(&table, 0, usize::from(header.e_phnum), ctx)
                .map_err(not_elf)?;
        Ok(tables)
    }

    fn malformed(&self, reason: &str) -> ElfError {
        ElfError::NotElf {
            path: self.path.to_owned(),
            reason: reason.to_owned(),
        }
    }

    /// `len` bytes at `offset`, all of them, at most [`MAX_ELF_TABLE_BYTES`].
    fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, ElfError> {
        if len > MAX_ELF_TABLE_BYTES {
            return Err(ElfError::TooLarge {
                path: self.path.to_owned(),
            });
        }
        let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(0)];
        std::os::unix::fs::FileExt::read_exact_at(&*self.file, &mut bytes, offset).map_err(
            |source| ElfError::Read {
                path: self.path.to_owned(),
                source,
            },
        )?;
        Ok(bytes)
    }

    fn segment(&self, kind: u32) -> Option<&goblin::elf::ProgramHeader> {
        self.segments
            .iter()
            .find(|ph| ph.p_type == kind && ph.p_filesz != 0)
    }

    fn interpreter(&self) -> Result<Option<String>, ElfError> {
        // The kernel uses the first PT_INTERP; a parser taking another one would mount a file
        // of the program's choosing: refuse any doubt.
        let interps = self
            .segments
            .iter()
            .filter(|ph| ph.p_type == goblin::elf::program_header::PT_INTERP)
            .count();
        if interps > 1 {
            return Err(self.malformed("more than one PT_INTERP"));
        }
        let Some(interp) = self.segment(goblin::elf::program_header::PT_INTERP) else {
            return Ok(None);
        };
        if interp.p_filesz > MAX_INTERPRETER_BYTES {
            return Err(self.malformed("an interpreter path longer than PATH_MAX"));
        }
        let mut name = self.read(interp.p_offset, interp.p_filesz)?;
        // As the kernel reads it: the segment must end with a NUL, and the path is what comes
        // before the first one.
        if name.last() != Some(&0) {
            return Err(self.malformed("an interpreter path without its NUL"));
        }
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        name.truncate(end);
        String::from_utf8(name)
            .map(Some)
            .map_err(|_| self.malformed("an interpreter path that is not UTF-8"))
    }

    /// Where the loaded address `addr` lies in the file (the `PT_LOAD` segment that holds it).
    fn file_offset(&self, addr: u64) -> Option<u64> {
        self.segments
            .iter()
            .filter(|ph| ph.p_type == goblin::elf::program_header::PT_LOAD)
            .find(|ph| addr >= ph.p_vaddr && addr - ph.p_vaddr < ph.p_filesz)
            .and_then(|ph| ph.p_offset.checked_add(addr - ph.p_vaddr))
    }

    /// The `DT_NEEDED` names (at most [`MAX_LIBRARIES`]), `DT_RUNPATH` and `DT_RPATH` strings.
    fn dynamic_strings(&self) -> Result<DynamicStrings, ElfError> {
        use goblin::elf::dynamic::{DT_NEEDED, DT_NULL, DT_RPATH, DT_RUNPATH, DT_STRSZ, DT_STRTAB};
        let Some(dynamic) = self.segment(goblin::elf::program_header::PT_DYNAMIC) else {
            return Ok(DynamicStrings::default());
        };
        let table = self.read(dynamic.p_offset, dynamic.p_filesz)?;
        // Each entry is a tag and a value, both of the class's word size.
        let word = if self.ctx.container.is_big() { 8 } else { 4 };
        let little = self.ctx.le.is_little();
        let number = |bytes: &[u8]| -> u64 {
            let mut wide = [0u8; 8];
            if little {
                wide[..bytes.len()].copy_from_slice(bytes);
                u64::from_le_bytes(wide)
            } else {
                wide[8 - bytes.len()..].copy_from_slice(bytes);
                u64::from_be_bytes(wide)
            }
        };
        let (mut strtab, mut strsz) = (None, None);
        let (mut needed, mut runpath, mut rpath) = (Vec::new(), Vec::new(), Vec::new());
        for entry in table.chunks_exact(2 * word) {
            let (tag, value) = (number(&entry[..word]), number(&entry[word..]));
            match tag {
                DT_NULL => break,
                DT_STRTAB => strtab = Some(value),
                DT_STRSZ => strsz = Some(value),
                DT_NEEDED => needed.push(value),
                DT_RUNPATH => runpath.push(value),
                DT_RPATH => rpath.push(value),
                _ => {}
            }
            if needed.len() > MAX_LIBRARIES {
                return Err(ElfError::TooMany);
            }
        }
        if needed.is_empty() && runpath.is_empty() && rpath.is_empty() {
            return Ok(DynamicStrings::default());
        }
        let (Some(strtab), Some(strsz)) = (strtab, strsz) else {
            return Err(self.malformed("dynamic strings without DT_STRTAB and DT_STRSZ"));
        };
        let offset = self
            .file_offset(strtab)
            .ok_or_else(|| self.malformed("DT_STRTAB outside every loaded segment"))?;
        let strings = self.read(offset, strsz)?;
        let string = |at: u64| -> Result<String, ElfError> {
            let rest = usize::try_from(at)
                .ok()
                .and_then(|at| strings.get(at..))
                .ok_or_else(|| self.malformed("a dynamic string outside DT_STRTAB"))?;
            let end = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| self.malformed("a dynamic string without its NUL"))?;
            String::from_utf8(rest[..end].to_vec())
                .map_err(|_| self.malformed("a dynamic string that is not UTF-8"))
        };
        let strings_at = |offsets: Vec<u64>| -> Result<Vec<String>, ElfError> {
            offsets.into_iter().map(string).collect()
        };
        Ok(DynamicStrings {
            needed: strings_at(needed)?,
            runpath: strings_at(runpath)?,
            rpath: strings_at(rpath)?,
        })
    }
}

/// As many bytes at `offset` as there are, up to `buf`'s length.
fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

/// Longest interpreter path accepted (`PATH_MAX`).
const MAX_INTERPRETER_BYTES: u64 = 4096;

/// Where libraries are searched. `sysroot` is prefixed to every path looked up on the host
/// (`/` for real use; a temporary directory in tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibrarySearch {
    /// The host directory that stands for `/`.
    pub sysroot: PathBuf,
    /// The directories of `ld.so.conf`, in order (empty: not read).
    pub conf_dirs: Vec<PathBuf>,
    /// The loader's default directories, in order.
    pub default_dirs: Vec<PathBuf>,
}

impl Default for LibrarySearch {
    /// The default directories only (no `ld.so.conf`), beneath `/`.
    fn default() -> Self {
        Self {
            sysroot: PathBuf::from("/"),
            conf_dirs: Vec::new(),
            default_dirs: DEFAULT_LIBRARY_DIRS.iter().map(PathBuf::from).collect(),
        }
    }
}

/// Most `include` levels of `ld.so.conf` followed.
const MAX_CONF_DEPTH: usize = 8;
/// Most directories taken from `ld.so.conf` and its includes.
const MAX_CONF_DIRS: usize = 256;
/// Largest `ld.so.conf` (or included file) read.
const MAX_CONF_BYTES: u64 = 64 << 10;

impl LibrarySearch {
    /// The search of this host: [`LibrarySearch::default`] plus the directories of
    /// `sysroot/etc/ld.so.conf` (a missing or unreadable file adds none).
    pub fn host(sysroot: &Path) -> Self {
        let mut search = Self {
            sysroot: sysroot.to_owned(),
            ..Self::default()
        };
        let mut dirs = Vec::new();
        read_ld_so_conf(sysroot, Path::new("/etc/ld.so.conf"), 0, &mut dirs);
        search.conf_dirs = dirs;
        search
    }
}

/// Appends the directories `conf` (a path in the sysroot) lists, following `include` lines
/// (a glob in the last component only: `*` and `?`), skipping `hwcap` lines and comments.
fn read_ld_so_conf(sysroot: &Path, conf: &Path, depth: usize, dirs: &mut Vec<PathBuf>) {
    use std::io::Read;
    if depth > MAX_CONF_DEPTH {
        return;
    }
    let host = sysroot.join(conf.strip_prefix("/").unwrap_or(conf));
    let mut text = String::new();
    let read =
        std::fs::File::open(&host).and_then(|f| f.take(MAX_CONF_BYTES).read_to_string(&mut text));
    if read.is_err() {
        return;
    }
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(pattern) = line.strip_prefix("include") {
            let pattern = pattern.trim();
            let pattern = if pattern.starts_with('/') {
                PathBuf::from(pattern)
            } else {
                conf.parent().unwrap_or(Path::new("/")).join(pattern)
            };
            for included in glob_last_component(sysroot, &pattern) {
                read_ld_so_conf(sysroot, &included, depth + 1, dirs);
            }
            continue;
        }
        if line.starts_with("hwcap") {
            continue;
        }
        for entry in line.split([' ', '\t', ',', ':']).filter(|e| !e.is_empty()) {
            let dir = PathBuf::from(entry);
            if dirs.len() < MAX_CONF_DIRS && is_clean_absolute(&dir) && !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
}

/// The paths (in the sysroot) `pattern` matches, sorted, when only its last component holds
/// `*` or `?`; the pattern itself when it holds neither.
fn glob_last_component(sysroot: &Path, pattern: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
        return Vec::new();
    };
    let Some(name) = name.to_str() else {
        return Vec::new();
    };
    if !name.contains(['*', '?']) {
        return vec![pattern.to_owned()];
    }
    let host_dir = sysroot.join(dir.strip_prefix("/").unwrap_or(dir));
    let Ok(entries) = std::fs::read_dir(host_dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|entry| wildcard_match(name.as_bytes(), entry.as_bytes()))
        .map(|entry| dir.join(entry))
        .collect();
    found.sort();
    found.truncate(MAX_CONF_DIRS);
    found
}

/// `*` (any run) and `?` (one byte) matching, as glob(3) does within one path component (a
/// leading `.` is matched only by a literal `.`).
fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pattern.first() != Some(&b'.') {
        return false;
    }
    // Iterative matching with one backtrack point: linear in practice, never recursive.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// One file the loader will open: at `target` in the program root, the host's `source`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Needed {
    /// The path the loader looks up (absolute, in the program root).
    pub target: PathBuf,
    /// The real host file (every symlink followed).
    pub source: PathBuf,
}

/// A library still to find: its `DT_NEEDED` name, the object that needs it (as the loader sees
/// it in the root; `None` for the executable) and that object's own search lists.
struct Wanted {
    name: String,
    by: Option<PathBuf>,
    rpath: Vec<String>,
    runpath: Vec<String>,
}

/// The interpreter and every library `program` needs, each at the path the loader will open.
/// Empty for a static program. `program` is a host path.
pub fn dependencies(program: &Path, search: &LibrarySearch) -> Result<Vec<Needed>, ElfError> {
    dependencies_from(program, program, search)
}

/// [`dependencies`] of the program read from `read` (an open file's `/proc/self/fd/N`, say),
/// named `program` in errors and for `$ORIGIN`.
pub fn dependencies_from(
    read: &Path,
    program: &Path,
    search: &LibrarySearch,
) -> Result<Vec<Needed>, ElfError> {
    let info = read_elf(read).map_err(|e| match e {
        ElfError::Read { source, .. } => ElfError::Read {
            path: program.to_owned(),
            source,
        },
        ElfError::NotElf { reason, .. } => ElfError::NotElf {
            path: program.to_owned(),
            reason,
        },
        ElfError::TooLarge { .. } => ElfError::TooLarge {
            path: program.to_owned(),
        },
        other => other,
    })?;
    let Some(interp) = &info.interpreter else {
        return Ok(Vec::new());
    };
    let interp_path = PathBuf::from(interp);
    if !is_clean_absolute(&interp_path) {
        return Err(ElfError::BadInterpreter {
            path: program.to_owned(),
            interp: interp.clone(),
        });
    }
    let host = |p: &Path| search.sysroot.join(p.strip_prefix("/").unwrap_or(p));
    let canonical = |target: &Path| -> Result<PathBuf, ElfError> {
        std::fs::canonicalize(host(target)).map_err(|source| ElfError::Read {
            path: target.to_owned(),
            source,
        })
    };
    // The interpreter is mounted like a library, so it must be one: an ELF file of the
    // program's class and machine (a program naming a secret, a text file or a /proc file as
    // its interpreter is refused, never mounted).
    let interp_source = canonical(&interp_path)?;
    match read_elf(&interp_source) {
        Ok(lib) if lib.is_64 == info.is_64 && lib.machine == info.machine => {}
        _ => {
            return Err(ElfError::BadInterpreter {
                path: program.to_owned(),
                interp: interp.clone(),
            })
        }
    }
    let mut out = vec![Needed {
        source: interp_source,
        target: interp_path,
    }];

    // The executable's DT_RPATH applies to every object when it has no DT_RUNPATH.
    let exe_rpath: Vec<String> = if info.runpath.is_empty() {
        info.rpath.clone()
    } else {
        Vec::new()
    };
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut queue: VecDeque<Wanted> = info
        .needed
        .iter()
        .map(|n| Wanted {
            name: n.clone(),
            by: None,
            rpath: info.rpath.clone(),
            runpath: info.runpath.clone(),
        })
        .collect();
    while let Some(Wanted {
        name,
        by,
        rpath,
        runpath,
    }) = queue.pop_front()
    {
        if !seen.insert(name.clone()) {
            continue;
        }
        if seen.len() > MAX_LIBRARIES {
            return Err(ElfError::TooMany);
        }
        let origin = by.as_deref().and_then(Path::parent);
        let mut dirs: Vec<PathBuf> = Vec::new();
        let expand = |entry: &str, dirs: &mut Vec<PathBuf>| {
            if let Some(dir) = expand_origin(entry, origin) {
                dirs.push(dir);
            }
        };
        if runpath.is_empty() {
            rpath.iter().for_each(|e| expand(e, &mut dirs));
            if by.is_some() {
                exe_rpath.iter().for_each(|e| expand(e, &mut dirs));
            }
        }
        runpath.iter().for_each(|e| expand(e, &mut dirs));
        // The cache's directories, then the defaults. A library found in a directory the
        // loader of the root would not search (no cache there) is shown at the first default
        // directory instead.
        // The program's own lists, each directory once and at most MAX_SEARCH_DIRS of them:
        // `DT_RPATH=/dev:/dev:...` costs nothing.
        let mut unique = BTreeSet::new();
        dirs.retain(|d| unique.insert(d.clone()));
        dirs.truncate(MAX_SEARCH_DIRS);
        let searched_by_loader = dirs.len();
        dirs.extend(search.conf_dirs.iter().cloned());
        let conf_end = dirs.len();
        dirs.extend(search.default_dirs.iter().cloned());

        let candidates: Vec<(PathBuf, bool)> = if name.contains('/') {
            vec![(PathBuf::from(&name), false)]
        } else {
            dirs.iter()
                .enumerate()
                .map(|(i, d)| {
                    let only_in_cache = (searched_by_loader..conf_end).contains(&i)
                        && !search.default_dirs.contains(d);
                    (d.join(&name), only_in_cache)
                })
                .collect()
        };
        let found = candidates.into_iter().find_map(|(at, only_in_cache)| {
            if !is_clean_absolute(&at) {
                return None;
            }
            let lib = read_elf(&host(&at)).ok()?;
            (lib.is_64 == info.is_64 && lib.machine == info.machine).then_some((
                at,
                only_in_cache,
                lib,
            ))
        });
        let Some((at, only_in_cache, lib)) = found else {
            return Err(ElfError::NotFound {
                name,
                by: by.unwrap_or_else(|| program.to_owned()),
            });
        };
        let target = match search.default_dirs.first() {
            Some(first) if only_in_cache => first.join(&name),
            _ => at.clone(),
        };
        out.push(Needed {
            source: canonical(&at)?,
            target: target.clone(),
        });
        for next in &lib.needed {
            queue.push_back(Wanted {
                name: next.clone(),
                by: Some(target.clone()),
                rpath: lib.rpath.clone(),
                runpath: lib.runpath.clone(),
            });
        }
    }
    Ok(out)
}

/// `entry` with `$ORIGIN`/`${ORIGIN}` replaced by `origin` (the loading library's directory in
/// the root), made clean. `None` when it cannot be used in the root: `$ORIGIN` of the
/// executable (`origin` is `None`), `$LIB`/`$PLATFORM`, a relative or unclean result.
fn expand_origin(entry: &str, origin: Option<&Path>) -> Option<PathBuf> {
    let text = if entry.contains("$ORIGIN") || entry.contains("${ORIGIN}") {
        let origin = origin?.to_str()?;
        entry
            .replace("${ORIGIN}", origin)
            .replace("$ORIGIN", origin)
    } else {
        entry.to_owned()
    };
    if text.contains('$') || !text.starts_with('/') {
        return None;
    }
    // Lexical clean-up of `.` and `..`, as the loader does for $ORIGIN/../lib.
    let mut clean = PathBuf::from("/");
    for c in Path::new(&text).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                clean.pop();
            }
            Component::Normal(n) => clean.push(n),
            Component::Prefix(_) => return None,
        }
    }
    Some(clean)
}

fn is_clean_absolute(path: &Path) -> bool {
    portcullis_child::program_root::is_clean_absolute(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What goblin's parse of the whole file says, for comparison.
    fn whole_parse(path: &Path) -> Option<ElfInfo> {
        let bytes = std::fs::read(path).ok()?;
        let elf = goblin::elf::Elf::parse(&bytes).ok()?;
        Some(ElfInfo {
            interpreter: elf.interpreter.map(str::to_owned),
            needed: elf.libraries.iter().map(|s| (*s).to_owned()).collect(),
            runpath: search_list(&elf.runpaths),
            rpath: search_list(&elf.rpaths),
            is_64: elf.is_64,
            machine: elf.header.e_machine,
        })
    }

    #[test]
    fn the_tables_alone_match_the_whole_parse() {
        let mut compared = 0;
        // This test binary and the host's usual programs and libraries (dynamic and static).
        for path in [
            "/proc/self/exe",
            "/bin/sh",
            "/usr/bin/env",
            "/bin/ls",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/x86_64-linux-gnu/libseccomp.so.2",
            "/lib64/ld-linux-x86-64.so.2",
            "/lib/x86_64-linux-gnu/libm.so.6",
        ] {
            let path = Path::new(path);
            let Some(whole) = whole_parse(path) else {
                continue;
            };
            assert_eq!(read_elf(path).unwrap(), whole, "{}", path.display());
            assert_eq!(
                read_interpreter(path).unwrap(),
                whole.interpreter,
                "{}",
                path.display()
            );
            let file = std::fs::File::open(path).unwrap();
            assert_eq!(
                read_interpreter_of(path, &file).unwrap(),
                whole.interpreter,
                "{} (open)",
                path.display()
            );
            compared += 1;
        }
        assert!(compared >= 1, "no ELF file to compare with");
        assert!(read_interpreter(Path::new("/proc/self/exe"))
            .unwrap()
            .is_some());
    }

    /// This test binary's bytes with one program header's type set to `p_type`, and the index
    /// of its PT_INTERP header. (An x86-64 little-endian ELF64: the type is the first 4 bytes.)
    fn with_header_type(bytes: &mut [u8], pick: impl Fn(u32) -> bool, p_type: u32) -> bool {
        let elf = goblin::elf::Elf::parse(bytes).unwrap();
        let (phoff, phentsize) = (elf.header.e_phoff, elf.header.e_phentsize);
        let Some(i) = elf.program_headers.iter().position(|ph| pick(ph.p_type)) else {
            return false;
        };
        let at = usize::try_from(phoff).unwrap() + i * usize::from(phentsize);
        bytes[at..at + 4].copy_from_slice(&p_type.to_le_bytes());
        true
    }

    /// A second PT_INTERP (the kernel uses the first; goblin reports the last) is refused,
    /// never a chance for the program to pick a file to mount.
    #[test]
    fn a_second_interpreter_header_is_refused() {
        use goblin::elf::program_header::{PT_INTERP, PT_LOAD, PT_PHDR};
        let mut bytes = std::fs::read("/proc/self/exe").unwrap();
        let patched = with_header_type(
            &mut bytes,
            |t| ![PT_INTERP, PT_LOAD, PT_PHDR].contains(&t),
            PT_INTERP,
        );
        assert!(patched, "no spare program header in this test binary");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("two-interps");
        std::fs::write(&path, &bytes).unwrap();
        match read_elf(&path) {
            Err(ElfError::NotElf { reason, .. }) => {
                assert!(reason.contains("more than one PT_INTERP"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(read_interpreter(&path).is_err());
    }

    /// An interpreter that is not an ELF file of the program's kind (a secret, a text file) is
    /// refused, not mounted; the real one is accepted (the pair).
    #[test]
    fn an_interpreter_must_be_an_elf_of_the_programs_kind() {
        let search = LibrarySearch::host(Path::new("/"));
        let program = Path::new("/proc/self/exe");
        let real = read_interpreter(program)
            .unwrap()
            .expect("a dynamic test binary");
        assert!(dependencies(&std::fs::canonicalize(program).unwrap(), &search).is_ok());
        let dir = tempfile::Builder::new()
            .prefix("e")
            .tempdir_in("/tmp")
            .unwrap();
        let secret = dir.path().join("s");
        std::fs::write(&secret, "not a library\n").unwrap();
        let secret_name = secret.to_str().unwrap();
        assert!(
            secret_name.len() <= real.len(),
            "{secret_name} longer than {real}"
        );
        let mut bytes = std::fs::read(program).unwrap();
        let at = bytes
            .windows(real.len())
            .position(|w| w == real.as_bytes())
            .unwrap();
        bytes[at..at + real.len()].fill(0);
        bytes[at..at + secret_name.len()].copy_from_slice(secret_name.as_bytes());
        let patched = dir.path().join("p");
        std::fs::write(&patched, &bytes).unwrap();
        assert_eq!(
            read_interpreter(&patched).unwrap().as_deref(),
            Some(secret_name)
        );
        assert!(
            matches!(
                dependencies(&patched, &search),
                Err(ElfError::BadInterpreter { .. })
            ),
            "{:?}",
            dependencies(&patched, &search)
        );
    }

    /// Library search never opens what is not a regular file (a FIFO would block, a device
    /// would act), and repeated search directories cost nothing.
    #[test]
    fn only_regular_files_are_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        match read_elf(&fifo) {
            Err(ElfError::NotElf { reason, .. }) => assert_eq!(reason, "not a regular file"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read_elf(Path::new("/dev/null")),
            Err(ElfError::NotElf { .. })
        ));
        assert!(matches!(read_elf(dir.path()), Err(ElfError::NotElf { .. })));
        // An open file is checked as well (a directory here: a program's path may name anything
        // once it has been opened).
        let open_dir = std::fs::File::open(dir.path()).unwrap();
        match read_interpreter_of(dir.path(), &open_dir) {
            Err(ElfError::NotElf { reason, .. }) => assert_eq!(reason, "not a regular file"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_interpreter_of_a_non_elf_or_truncated_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("text");
        std::fs::write(&text, "#!/bin/sh\necho hi\n").unwrap();
        assert!(matches!(
            read_interpreter(&text),
            Err(ElfError::NotElf { .. })
        ));
        // A real ELF header whose program headers lie past the end of the file.
        let head = std::fs::read("/proc/self/exe").unwrap();
        let cut = dir.path().join("cut");
        std::fs::write(&cut, &head[..64]).unwrap();
        assert!(read_interpreter(&cut).is_err());
        assert!(matches!(
            read_interpreter(&dir.path().join("missing")),
            Err(ElfError::Read { .. })
        ));
        // Cut after its program headers: the dynamic section lies past the end.
        for len in [4096, 64 << 10] {
            let cut = dir.path().join(format!("cut-{len}"));
            std::fs::write(&cut, &head[..len.min(head.len())]).unwrap();
            assert!(read_elf(&cut).is_err(), "{len}");
        }
        // Every byte of the header region flipped in turn: an error or an answer, never a panic.
        let mut bytes = head[..8192.min(head.len())].to_vec();
        let flipped = dir.path().join("flipped");
        for i in 0..256 {
            bytes[i] ^= 0xff;
            std::fs::write(&flipped, &bytes).unwrap();
            let _ = read_elf(&flipped);
            bytes[i] ^= 0xff;
        }
    }

    #[test]
    fn origin_expansion() {
        let lib = Some(Path::new("/opt/app/lib"));
        for (entry, origin, want) in [
            ("$ORIGIN", lib, Some("/opt/app/lib")),
            ("${ORIGIN}/../lib64", lib, Some("/opt/app/lib64")),
            ("/usr/local/lib", lib, Some("/usr/local/lib")),
            ("$ORIGIN/lib", None, None),
            ("/usr/$LIB", lib, None),
            ("relative/dir", lib, None),
        ] {
            assert_eq!(
                expand_origin(entry, origin),
                want.map(PathBuf::from),
                "{entry}"
            );
        }
    }

    #[test]
    fn wildcards() {
        for (pattern, name, want) in [
            ("*.conf", "libc.conf", true),
            ("*.conf", "libc.conf.bak", false),
            ("*.conf", ".hidden.conf", false),
            ("x?.conf", "x1.conf", true),
            ("*", "anything", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
        ] {
            assert_eq!(
                wildcard_match(pattern.as_bytes(), name.as_bytes()),
                want,
                "{pattern} {name}"
            );
        }
    }

    #[test]
    fn ld_so_conf_with_includes_comments_and_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc/ld.so.conf.d")).unwrap();
        std::fs::write(
            root.join("etc/ld.so.conf"),
            "include /etc/ld.so.conf.d/*.conf\n/opt/first # a comment\nhwcap 0 nosegneg\n",
        )
        .unwrap();
        std::fs::write(
            root.join("etc/ld.so.conf.d/a.conf"),
            "# libc default configuration\n/usr/local/lib\n/usr/local/lib, /opt/x:/opt/y\n",
        )
        .unwrap();
        // Includes itself: followed to the depth limit, never forever.
        std::fs::write(
            root.join("etc/ld.so.conf.d/b.conf"),
            "relative/dir\ninclude b.conf\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/ld.so.conf.d/c.conf.bak"), "/not/this\n").unwrap();
        let search = LibrarySearch::host(root);
        assert_eq!(
            search.conf_dirs,
            ["/usr/local/lib", "/opt/x", "/opt/y", "/opt/first"]
                .map(PathBuf::from)
                .to_vec()
        );
        assert_eq!(
            LibrarySearch::host(Path::new("/nonexistent")).conf_dirs,
            Vec::<PathBuf>::new()
        );
    }

    #[test]
    fn a_static_or_garbage_file() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"#!/bin/sh\necho hi\n").unwrap();
        assert!(matches!(
            dependencies(&junk, &LibrarySearch::default()),
            Err(ElfError::NotElf { .. })
        ));
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(
            dependencies(&empty, &LibrarySearch::default()),
            Err(ElfError::NotElf { .. })
        ));
    }
}
