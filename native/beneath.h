// Opening a path that must stay beneath a directory: the kernel resolves it relative to the
// directory's fd and refuses anything that would leave it (`..` past the top, an absolute path, a
// symlink pointing out, a /proc magic link), so no check on the path's text can be fooled by
// encodings, symlinks or a race with a rename.
//
// - Linux 5.6+: openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, one atomic lookup.
// - FreeBSD 13+: openat(2) with O_RESOLVE_BENEATH, one atomic lookup.
// - Elsewhere (macOS, older kernels, seccomp filters that refuse openat2), or when forced: a walk,
//   one openat(O_NOFOLLOW) per component from the directory's fd, symlinks read with readlinkat
//   and resolved by us, `..` popped from our own stack of directory fds (never opened in the
//   kernel). It never leaves the tree it walks; what it cannot promise is stated in
//   docs/security.md (a directory renamed out of the root while a walk is inside it).
//
// Every way out fails with EXDEV, whatever the platform says (FreeBSD: ENOTCAPABLE). Absolute
// symlinks are refused even when they point back inside: the kernel primitives do so, and the
// walk matches them so the answer does not depend on the platform.
#pragma once

namespace iapp {

enum Confinement : int {
  kConfineAuto = 0,     // the kernel's primitive where it works, else the walk
  kConfineWalk = 1,     // always the walk (tests prove the fallback with it)
};
// Process-wide; takes effect for the opens started from now on.
void SetConfinement(int how);
// What opens use now: "openat2", "O_RESOLVE_BENEATH" or "walk". May probe the kernel once.
const char* ConfinementName();

// Opens `path` (relative: an absolute one is EXDEV, as the kernel has it) beneath the directory `dirfd` with `flags`
// (O_CLOEXEC is added) and `mode` (used with O_CREAT). Returns the fd, or -errno with *sys set
// to the failing syscall (kSysOpenat2, kSysOpenat, kSysReadlinkat).
int OpenBeneath(int dirfd, const char* path, int flags, int mode, int* sys);

}  // namespace iapp
