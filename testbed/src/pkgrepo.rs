//! Test packages for the systemd hosts' package managers, and the repositories serving them.
//!
//! Built once on the controller and cached beside the root filesystem (see `rootfs.rs`):
//! pacman packages with makepkg (as the unprivileged system user `playbuild`: makepkg refuses
//! root) and Debian packages with `dpkg-deb`. Each installs `/usr/share/<name>/VERSION` and a
//! `/usr/bin/<name>` that prints its name and version. The cache also holds `layer/`, an
//! overlayfs layer above the root filesystem with the repositories as a host boots with them
//! (only the first version of each package) and the package managers' configuration:
//!
//! - `/srv/pacman`: repository `[playtest]` (repo-add), named in `/etc/pacman.conf`;
//! - `/srv/apt`: a flat apt repository (dpkg-scanpackages, an unsigned Release), the only entry of
//!   `/etc/apt/sources.list`, so `apt-get update` needs no network;
//! - `/srv/debs/play-local_1.0_all.deb`, in no repository (for apt's `deb:` argument).
//!
//! Publishing a later version copies the prebuilt file into a running host's repository and
//! indexes it again, on the controller, in the host's root directory.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{chown, DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Instant, SystemTime};

use sha2::{Digest, Sha256};

use crate::rootfs::{self, stable_hash, tail};
use crate::users::run_admin;

/// The system user makepkg runs as.
const BUILD_USER: &str = "playbuild";
pub(crate) const PACMAN_REPO: &str = "playtest";
const PKGEXT: &str = ".pkg.tar.gz";
/// Bump when the packages' contents or the layer change.
const PACKAGES_RECIPE: u32 = 3;

pub(crate) const REPO_ADD: &str = "/usr/bin/repo-add";
pub(crate) const DPKG_SCANPACKAGES: &str = "/usr/bin/dpkg-scanpackages";

/// A test package: name, version, dependencies, whether the repository has it at boot.
struct Recipe {
    name: &'static str,
    version: &'static str,
    depends: &'static [&'static str],
    at_boot: bool,
}

const fn recipe(
    name: &'static str,
    version: &'static str,
    depends: &'static [&'static str],
    at_boot: bool,
) -> Recipe {
    Recipe {
        name,
        version,
        depends,
        at_boot,
    }
}

const PACMAN_PACKAGES: &[Recipe] = &[
    recipe("hello-a", "1.0", &[], true),
    recipe("hello-a", "1.1", &[], false),
    recipe("hello-c", "1.0", &[], true),
    recipe("hello-b", "1.0", &["hello-c"], true),
];

const DEBIAN_PACKAGES: &[Recipe] = &[
    recipe("play-hello", "1.0", &[], true),
    recipe("play-hello", "1.1", &[], false),
    recipe("play-dep", "1.0", &[], true),
    recipe("play-needs-dep", "1.0", &["play-dep"], true),
    // Never in the repository: installed from /srv/debs by path.
    recipe("play-local", "1.0", &[], false),
];
const LOCAL_DEB: &str = "play-local";

fn pacman_file(name: &str, version: &str) -> String {
    format!("{name}-{version}-1-any{PKGEXT}")
}

fn deb_file(name: &str, version: &str) -> String {
    format!("{name}_{version}_all.deb")
}

/// The cached packages: `pacman/`, `debs/` (every version) and `layer/`.
#[derive(Debug, Clone)]
pub(crate) struct Packages {
    dir: PathBuf,
}

impl Packages {
    /// The overlayfs layer with repositories and configuration as at boot.
    pub(crate) fn layer(&self) -> PathBuf {
        self.dir.join("layer")
    }

    fn prebuilt(&self, kind: &str, file: &str, recipes: &[Recipe]) -> io::Result<PathBuf> {
        let path = self.dir.join(kind).join(file);
        if path.is_file() {
            return Ok(path);
        }
        let known: Vec<String> = recipes
            .iter()
            .map(|r| format!("{} {}", r.name, r.version))
            .collect();
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "the testbed has no {kind} package {file}; it builds {}",
                known.join(", ")
            ),
        ))
    }

    /// Adds `name` `version` to `[playtest]` in the host whose root is `root` (repo-add
    /// replaces the package's entry).
    pub(crate) fn publish_pacman(&self, root: &Path, name: &str, version: &str) -> io::Result<()> {
        let file = pacman_file(name, version);
        let source = self.prebuilt("pacman", &file, PACMAN_PACKAGES)?;
        let repo = root.join("srv/pacman");
        fs::copy(&source, repo.join(&file))?;
        run(Command::new(REPO_ADD)
            .arg("-q")
            .arg(repo.join(format!("{PACMAN_REPO}.db.tar.gz")))
            .arg(repo.join(&file)))
    }

    /// Adds `name` `version` to the apt repository in the host whose root is `root` and
    /// writes its index again.
    pub(crate) fn publish_apt(&self, root: &Path, name: &str, version: &str) -> io::Result<()> {
        let file = deb_file(name, version);
        let source = self.prebuilt("debs", &file, DEBIAN_PACKAGES)?;
        let repo = root.join("srv/apt");
        fs::copy(&source, repo.join(&file))?;
        index_apt(&repo)
    }
}

/// The packages, built once per machine (a few seconds).
pub(crate) fn packages() -> io::Result<Packages> {
    let mut recipe_text = format!("{PACKAGES_RECIPE}");
    for r in PACMAN_PACKAGES.iter().chain(DEBIAN_PACKAGES) {
        recipe_text.push_str(&format!(
            " {}={}:{}:{}",
            r.name,
            r.version,
            r.depends.join("+"),
            r.at_boot
        ));
    }
    let name = format!("packages-{:012x}", stable_hash(&recipe_text) >> 16);
    let dir = rootfs::build_once(&name, build)?;
    Ok(Packages { dir })
}

fn mkdir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)?;
    // Whatever the umask: these modes show through the overlay.
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

fn write_file(path: &Path, text: &str, mode: u32) -> io::Result<()> {
    fs::write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Runs a command to completion; its output becomes the error message when it fails.
fn run(command: &mut Command) -> io::Result<()> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| io::Error::new(error.kind(), format!("cannot run {program}: {error}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{program} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

fn build(dir: &Path) -> io::Result<()> {
    let started = Instant::now();
    let pacman_dir = dir.join("pacman");
    let debs_dir = dir.join("debs");
    mkdir(&pacman_dir)?;
    mkdir(&debs_dir)?;
    build_pacman_packages(&pacman_dir)?;
    for r in DEBIAN_PACKAGES {
        build_deb(r, &debs_dir)?;
    }
    build_layer(dir, &pacman_dir, &debs_dir)?;
    eprintln!(
        "testbed: built the systemd hosts' test packages in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn package_script(name: &str, version: &str) -> String {
    format!("#!/bin/sh\necho '{name} {version}'\n")
}

/// (uid, gid) of the package builder, created as a system user if missing.
fn build_user() -> io::Result<(u32, u32)> {
    let find = || -> io::Result<Option<(u32, u32)>> {
        let passwd = fs::read_to_string("/etc/passwd")?;
        Ok(passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() >= 7 && fields[0] == BUILD_USER)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        }))
    };
    if let Some(ids) = find()? {
        return Ok(ids);
    }
    run_admin(
        "useradd",
        &[
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            "play testbed package builder",
            BUILD_USER,
        ],
        None,
    )?;
    find()?.ok_or_else(|| io::Error::other(format!("useradd did not create {BUILD_USER}")))
}

fn build_pacman_packages(out: &Path) -> io::Result<()> {
    let (uid, gid) = build_user()?;
    // In the temp dir, not the cache: the builder must reach it, and the cache may sit below
    // a directory only root can enter.
    let work = tempfile::Builder::new()
        .prefix("play-testbed-makepkg-")
        .tempdir()?;
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755))?;
    let dest = work.path().join("out");
    mkdir(&dest)?;
    chown(&dest, Some(uid), Some(gid))?;
    let mut builds: Vec<(Child, PathBuf, &Recipe)> = Vec::new();
    for r in PACMAN_PACKAGES {
        let build_dir = work.path().join(format!("{}-{}", r.name, r.version));
        mkdir(&build_dir)?;
        let depends: Vec<String> = r.depends.iter().map(|d| format!("'{d}'")).collect();
        let pkgbuild = format!(
            "pkgname={name}\n\
             pkgver={version}\n\
             pkgrel=1\n\
             pkgdesc='play testbed package {name}'\n\
             arch=('any')\n\
             license=('MIT')\n\
             depends=({depends})\n\
             options=(!strip !debug)\n\
             package() {{\n\
             \x20 install -d \"$pkgdir/usr/share/{name}\" \"$pkgdir/usr/bin\"\n\
             \x20 echo '{version}' > \"$pkgdir/usr/share/{name}/VERSION\"\n\
             \x20 printf '%s\\n' '#!/bin/sh' \"echo '{name} {version}'\" > \"$pkgdir/usr/bin/{name}\"\n\
             \x20 chmod 755 \"$pkgdir/usr/bin/{name}\"\n\
             }}\n",
            name = r.name,
            version = r.version,
            depends = depends.join(" "),
        );
        write_file(&build_dir.join("PKGBUILD"), &pkgbuild, 0o644)?;
        chown(&build_dir, Some(uid), Some(gid))?;
        let log = build_dir.with_extension("log");
        let log_file = File::create(&log)?;
        let child = Command::new("runuser")
            .args(["-u", BUILD_USER, "--", "env"])
            .arg(format!("HOME={}", build_dir.display()))
            .arg(format!("PKGDEST={}", dest.display()))
            .arg(format!("PKGEXT={PKGEXT}"))
            .args(["makepkg", "-d", "--nosign", "-f"])
            .current_dir(&build_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file.try_clone()?))
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("cannot run runuser (package util-linux): {error}"),
                )
            })?;
        builds.push((child, log, r));
    }
    let mut failures = Vec::new();
    for (mut child, log, r) in builds {
        let status = child.wait()?;
        if !status.success() {
            failures.push(format!(
                "makepkg {} {} failed ({status}) (packages makepkg, fakeroot, libarchive-tools):\n{}",
                r.name,
                r.version,
                tail(&log, 15)
            ));
        }
    }
    if !failures.is_empty() {
        return Err(io::Error::other(failures.join("\n")));
    }
    for r in PACMAN_PACKAGES {
        let file = pacman_file(r.name, r.version);
        fs::copy(dest.join(&file), out.join(&file))?;
    }
    Ok(())
}

fn build_deb(r: &Recipe, out: &Path) -> io::Result<()> {
    let work = tempfile::Builder::new()
        .prefix("play-testbed-deb-")
        .tempdir()?;
    let root = work.path().join("root");
    mkdir(&root.join("DEBIAN"))?;
    mkdir(&root.join("usr/bin"))?;
    mkdir(&root.join(format!("usr/share/{}", r.name)))?;
    let mut control = format!(
        "Package: {name}\n\
         Version: {version}\n\
         Architecture: all\n\
         Maintainer: play testbed <testbed@play.invalid>\n\
         Section: misc\n\
         Priority: optional\n",
        name = r.name,
        version = r.version
    );
    if !r.depends.is_empty() {
        control.push_str(&format!("Depends: {}\n", r.depends.join(", ")));
    }
    control.push_str(&format!("Description: play testbed package {}\n", r.name));
    write_file(&root.join("DEBIAN/control"), &control, 0o644)?;
    write_file(
        &root.join(format!("usr/share/{}/VERSION", r.name)),
        &format!("{}\n", r.version),
        0o644,
    )?;
    write_file(
        &root.join(format!("usr/bin/{}", r.name)),
        &package_script(r.name, r.version),
        0o755,
    )?;
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(&root)
        .arg(out.join(deb_file(r.name, r.version))))
}

/// Writes `Packages` for the flat repository `repo` (all the .deb files in it).
fn index_apt(repo: &Path) -> io::Result<()> {
    let output = Command::new(DPKG_SCANPACKAGES)
        .args(["--multiversion", ".", "/dev/null"])
        .current_dir(repo)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("cannot run {DPKG_SCANPACKAGES} (package dpkg-dev): {error}"),
            )
        })?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "dpkg-scanpackages in {} failed ({}): {}",
            repo.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    // Release first: apt reads it first, and a Release naming an index that is not there yet
    // fails a concurrent `apt-get update` where a stale one would just be ignored.
    let release = release_file(&output.stdout, SystemTime::now());
    replace_file(&repo.join("Release"), release.as_bytes())?;
    replace_file(&repo.join("Packages"), &output.stdout)
}

/// Writes `path` atomically (a temp file beside it, renamed).
fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = path.with_extension("play-new");
    fs::write(&temp, bytes)?;
    fs::set_permissions(&temp, fs::Permissions::from_mode(0o644))?;
    fs::rename(&temp, path)
}

/// An unsigned Release file for a flat repository whose only index is `packages`: with it
/// apt fetches just that index (without, it tries every compressed name first) and notices
/// when it changes. apt insists on a Date.
fn release_file(packages: &[u8], now: SystemTime) -> String {
    let digest: String = Sha256::digest(packages)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!(
        "Origin: play-testbed\n\
         Label: play-testbed\n\
         Date: {}\n\
         SHA256:\n\
         \x20{digest} {} Packages\n",
        rfc2822_utc(now),
        packages.len()
    )
}

/// `Sun, 22 Nov 2026 18:45:37 UTC`, the date format of Release files.
fn rfc2822_utc(time: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rest = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} UTC",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn build_layer(dir: &Path, pacman_dir: &Path, debs_dir: &Path) -> io::Result<()> {
    let layer = dir.join("layer");
    for sub in [
        "etc/apt",
        "srv/pacman",
        "srv/apt",
        "srv/debs",
        "var/lib/pacman",
        "var/cache/pacman/pkg",
    ] {
        mkdir(&layer.join(sub))?;
    }
    let pacman_repo = layer.join("srv/pacman");
    let mut boot_packages = Vec::new();
    for r in PACMAN_PACKAGES.iter().filter(|r| r.at_boot) {
        let file = pacman_file(r.name, r.version);
        fs::copy(pacman_dir.join(&file), pacman_repo.join(&file))?;
        boot_packages.push(pacman_repo.join(file));
    }
    run(Command::new(REPO_ADD)
        .arg("-q")
        .arg(pacman_repo.join(format!("{PACMAN_REPO}.db.tar.gz")))
        .args(&boot_packages))?;
    let apt_repo = layer.join("srv/apt");
    for r in DEBIAN_PACKAGES.iter().filter(|r| r.at_boot) {
        let file = deb_file(r.name, r.version);
        fs::copy(debs_dir.join(&file), apt_repo.join(file))?;
    }
    index_apt(&apt_repo)?;
    let local = deb_file(LOCAL_DEB, "1.0");
    fs::copy(debs_dir.join(&local), layer.join("srv/debs").join(local))?;
    write_file(
        &layer.join("etc/pacman.conf"),
        &format!(
            "# play testbed: the local test repository only\n\
             [options]\n\
             Architecture = auto\n\
             SigLevel = Never\n\
             LocalFileSigLevel = Never\n\
             \n\
             [{PACMAN_REPO}]\n\
             Server = file:///srv/pacman\n"
        ),
        0o644,
    )?;
    write_file(
        &layer.join("etc/apt/sources.list"),
        "# play testbed: the local test repository only\n\
         deb [trusted=yes] file:/srv/apt ./\n",
        0o644,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_each_format() {
        assert_eq!(
            pacman_file("hello-a", "1.1"),
            "hello-a-1.1-1-any.pkg.tar.gz"
        );
        assert_eq!(deb_file("play-hello", "1.0"), "play-hello_1.0_all.deb");
    }

    #[test]
    fn release_dates_are_rfc2822() {
        let at = |secs| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        assert_eq!(rfc2822_utc(at(0)), "Thu, 01 Jan 1970 00:00:00 UTC");
        assert_eq!(
            rfc2822_utc(at(1_795_373_137)),
            "Sun, 22 Nov 2026 18:45:37 UTC"
        );
        assert_eq!(
            rfc2822_utc(at(951_782_400)),
            "Tue, 29 Feb 2000 00:00:00 UTC"
        );
    }

    #[test]
    fn release_names_the_index_with_its_hash_and_size() {
        assert_eq!(
            release_file(b"", SystemTime::UNIX_EPOCH),
            "Origin: play-testbed\n\
             Label: play-testbed\n\
             Date: Thu, 01 Jan 1970 00:00:00 UTC\n\
             SHA256:\n \
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0 Packages\n"
        );
    }

    #[test]
    fn boot_repositories_hold_one_version_of_each_package() {
        for recipes in [PACMAN_PACKAGES, DEBIAN_PACKAGES] {
            let mut names: Vec<&str> = recipes
                .iter()
                .filter(|r| r.at_boot)
                .map(|r| r.name)
                .collect();
            let count = names.len();
            names.dedup();
            assert_eq!(names.len(), count);
        }
    }
}
