// A listening socket (TCP or Unix) owned by one loop. Accepted sockets start in the listener's
// read mode at once, without a round trip through JS.
#pragma once
#include <string>

#include "addr.h"
#include "loop.h"
#include "socket.h"

namespace iapp {

struct ListenSpec {
  std::string host;  // numeric address; empty with a path
  int port = 0;
  std::string path;  // Unix socket path
  int path_mode = -1;  // permission bits of the socket file (chmod between bind and listen); -1: the umask's
  int backlog = 4096;
  bool shared = false;  // one socket for all loops of the group, EPOLLEXCLUSIVE
  bool v6only = false;
  bool shed = false;    // on EMFILE, take pending connections off the backlog and close them
  std::string group;    // loops of one runtime share ports under this name (see Listener::Open)
  int fd = -1;          // adopt this inherited listening socket (socket activation) instead of binding
  SocketOptions socket;
};

// Binds with port 0 shared by the loops of one group: under a process-wide lock, bind_fn is called
// with the port the group's first loop got (0 if it is the first); the port it binds is recorded
// under `key` for the others. Returns bind_fn's fd or -errno. Each success takes a reference that
// ReleaseGroupPort(key) gives back.
// A bound, listening, non-blocking, close-on-exec socket that no loop watches: made on the main
// thread for child processes to inherit. -errno with *sys on failure.
int OpenListeningSocket(const ListenSpec& spec, int* sys);

int BindGroupPort(const std::string& key, int (*bind_fn)(void* ctx, int port), void* ctx);
void ReleaseGroupPort(const std::string& key);

class Listener : public Handle {
 public:
  static constexpr Kind kKind = Kind::kListener;
  // Binds (or joins) and listens. On failure returns null with *err (positive) and *sys.
  static Listener* Open(Loop* loop, const ListenSpec& spec, int* err, int* sys);

  void OnEvent(uint32_t events) override;
  void OnPollError(int err) override;
  void Abandon() override;

  // Whether sockets accepted from now on are announced to JS (see SocketOptions::quiet).
  void SetAnnounce(bool on) { spec_.socket.quiet = !on; }
  void Pause();
  void Resume();
  void Close();
  const SockAddr& local() const { return local_; }

 private:
  Listener(Loop* loop, const ListenSpec& spec) : Handle(loop, Kind::kListener), spec_(spec) {}
  void OnExhausted(int err);
  void Release();

  ListenSpec spec_;
  SockAddr local_;
  std::string registry_key_;
  bool paused_ = false;
};

}  // namespace iapp
